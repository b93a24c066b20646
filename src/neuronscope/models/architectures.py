"""Where each architecture keeps its neurons.

Components are located by regular expressions over ``model.named_modules()`` names, so the
same pattern works whether the model was loaded bare (``encoder.layer.3...``) or with a head
(``bert.encoder.layer.3...``). Each pattern's group 1 is the block (layer) index.

* ``mlp``: the module whose *input* is the FFN intermediate activation after the
  nonlinearity (BERT ``output.dense``, GPT-2 ``mlp.c_proj``, Llama ``mlp.down_proj`` whose
  input is ``act_fn(gate) * up``).
* ``attn``: the module whose *input* is the concatenation of the per-head attention outputs,
  before the output projection.
* ``block``: each transformer block; its output is the residual stream after block k, i.e.
  ``hidden_states[k + 1]`` (interventions edit it to change ``hidden`` neurons).
* ``embeddings``: the module whose *output* is ``hidden_states[0]`` (no group; the last match
  wins, so ELECTRA's ``embeddings_project`` is preferred over ``embeddings``).
* ``final_norm``: the final normalization whose *output* is ``hidden_states[-1]`` in models
  that normalize after the last block (GPT-2, Llama, GPT-NeoX); empty when there is none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from neuronscope.errors import UnknownComponentError


@dataclass(frozen=True)
class ArchitecturePatterns:
    """Regular expressions locating the per-block modules of one architecture family."""

    family: str
    mlp: str
    attn: str
    block: str = ""
    embeddings: str = ""
    final_norm: str = ""


_BERT = ArchitecturePatterns(
    "bert",
    mlp=r"(?:^|\.)encoder\.layer\.(\d+)\.output\.dense$",
    attn=r"(?:^|\.)encoder\.layer\.(\d+)\.attention\.output\.dense$",
    block=r"(?:^|\.)encoder\.layer\.(\d+)$",
    embeddings=r"(?:^|\.)(?:embeddings|embeddings_project)$",
)
_DISTILBERT = ArchitecturePatterns(
    "distilbert",
    mlp=r"(?:^|\.)transformer\.layer\.(\d+)\.ffn\.lin2$",
    attn=r"(?:^|\.)transformer\.layer\.(\d+)\.attention\.out_lin$",
    block=r"(?:^|\.)transformer\.layer\.(\d+)$",
    embeddings=r"(?:^|\.)embeddings$",
)
_GPT2 = ArchitecturePatterns(
    "gpt2",
    mlp=r"(?:^|\.)h\.(\d+)\.mlp\.c_proj$",
    attn=r"(?:^|\.)h\.(\d+)\.attn\.c_proj$",
    block=r"(?:^|\.)h\.(\d+)$",
    # wte + wpe (+ token types) is summed inline; the dropout after it outputs hidden_states[0].
    embeddings=r"^(?:transformer\.)?drop$",
    final_norm=r"^(?:transformer\.)?ln_f$",
)
_LLAMA = ArchitecturePatterns(
    "llama",
    mlp=r"(?:^|\.)layers\.(\d+)\.mlp\.down_proj$",
    attn=r"(?:^|\.)layers\.(\d+)\.self_attn\.o_proj$",
    block=r"(?:^|\.)layers\.(\d+)$",
    embeddings=r"(?:^|\.)embed_tokens$",
    final_norm=r"^(?:model\.)?norm$",
)
_GPT_NEOX = ArchitecturePatterns(
    "gpt_neox",
    mlp=r"(?:^|\.)layers\.(\d+)\.mlp\.dense_4h_to_h$",
    attn=r"(?:^|\.)layers\.(\d+)\.attention\.dense$",
    block=r"(?:^|\.)layers\.(\d+)$",
    embeddings=r"(?:^|\.)emb_dropout$",
    final_norm=r"(?:^|\.)final_layer_norm$",
)

#: model_type (from the Hugging Face config) -> module patterns.
ARCHITECTURES: dict[str, ArchitecturePatterns] = {
    **dict.fromkeys(["bert", "roberta", "xlm-roberta", "camembert", "electra", "mpnet"], _BERT),
    "distilbert": _DISTILBERT,
    "gpt2": _GPT2,
    **dict.fromkeys(
        ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "phi3", "smollm3"],
        _LLAMA,
    ),
    "gpt_neox": _GPT_NEOX,
}

#: The table printed in the README and by ``neuronscope info --architectures``.
SUPPORTED = {
    "bert": "BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, MPNet, MiniLM",
    "distilbert": "DistilBERT",
    "gpt2": "GPT-2",
    "llama": "Llama, Mistral, Qwen2/3, Gemma, OLMo, Phi-3, SmolLM2",
    "gpt_neox": "GPT-NeoX, Pythia",
}


def patterns_for(model: nn.Module) -> ArchitecturePatterns:
    """The module patterns of a Hugging Face model, by its config's ``model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ARCHITECTURES:
        raise UnknownComponentError(
            f"no built-in mlp/attn module patterns for model_type {model_type!r} "
            f"(known: {', '.join(sorted(ARCHITECTURES))}); use the 'hidden' component, or name "
            "modules yourself with modules={'name': [module names...]}"
        )
    return ARCHITECTURES[model_type]


def find_block_modules(model: nn.Module, pattern: str) -> dict[int, str]:
    """Map block index -> module name for every module whose name matches ``pattern``."""
    regex = re.compile(pattern)
    found: dict[int, str] = {}
    for name, _ in model.named_modules():
        match = regex.search(name)
        if match:
            found.setdefault(int(match.group(1)), name)
    return dict(sorted(found.items()))


def input_width(module: nn.Module) -> int:
    """Number of input features of a projection (``nn.Linear`` or GPT-2's ``Conv1D``)."""
    if isinstance(module, nn.Linear):
        return module.in_features
    weight = getattr(module, "weight", None)
    if weight is not None and type(module).__name__ == "Conv1D":
        return int(weight.shape[0])  # Conv1D stores weight as (in, out)
    if weight is not None and weight.dim() == 2:
        return int(weight.shape[1])
    raise UnknownComponentError(f"cannot tell the input width of module {type(module).__name__}")
