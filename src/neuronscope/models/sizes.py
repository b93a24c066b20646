"""How large an activation store gets: words x neurons x bytes per value.

Shapes of popular model families (from their published configs) give the neurons per word
of the ``hidden`` component (``layers + 1`` residual-stream vectors: the embeddings and each
block's output) and of the ``mlp`` component (each block's intermediate activations). The
README's "Scale" table is printed by :func:`size_table`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuronscope.errors import NeuronscopeError


@dataclass(frozen=True)
class Family:
    """Shape of a model family: blocks, residual width, MLP intermediate width."""

    name: str
    layers: int
    hidden: int
    intermediate: int

    @property
    def hidden_neurons(self) -> int:
        """Neurons per word of ``hidden`` (embeddings + every block's output)."""
        return (self.layers + 1) * self.hidden

    @property
    def mlp_neurons(self) -> int:
        """Neurons per word of ``mlp`` (every block's intermediate activations)."""
        return self.layers * self.intermediate


FAMILIES = (
    Family("all-MiniLM-L6-v2", 6, 384, 1536),
    Family("BERT-base", 12, 768, 3072),
    Family("GPT-2 small", 12, 768, 3072),
    Family("SmolLM2-135M", 30, 576, 1536),
    Family("Llama-3.1-8B", 32, 4096, 14336),
    Family("Mistral-7B", 32, 4096, 14336),
    Family("Qwen2.5-7B", 28, 3584, 18944),
    Family("Llama-3.1-70B", 80, 8192, 28672),
)


def store_bytes(n_words: int, n_neurons: int, dtype: str = "float16") -> int:
    """Bytes of the activation arrays of a store (uncompressed; the words table aside)."""
    try:
        size = np.dtype(dtype).itemsize if dtype != "bfloat16" else 2
    except TypeError:
        raise NeuronscopeError(f"unknown dtype {dtype!r}") from None
    if n_words < 0 or n_neurons < 0:
        raise NeuronscopeError("words and neurons must be >= 0")
    return int(n_words) * int(n_neurons) * size


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # unreachable


def size_table(n_words: int = 200_000, dtypes: tuple[str, ...] = ("float16", "float32")) -> str:
    """A Markdown table of store sizes of :data:`FAMILIES` for ``n_words`` words."""
    head = ["model", "hidden neurons", "mlp neurons",
            *[f"hidden+mlp, {dt}" for dt in dtypes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in FAMILIES:
        total = f.hidden_neurons + f.mlp_neurons
        sizes = [_human(store_bytes(n_words, total, dt)) for dt in dtypes]
        lines.append(f"| {f.name} | {f.hidden_neurons:,} | {f.mlp_neurons:,} | "
                     + " | ".join(sizes) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(size_table())
