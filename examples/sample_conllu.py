"""Copy the first N CoNLL-U sentences of 5 to MAX_WORDS words verbatim (``# text`` kept).

Used for the small SmolLM2 samples of docs/findings.md:

    python examples/sample_conllu.py en_ewt-ud-train.conllu train200.conllu 200 30
"""

from __future__ import annotations

import argparse
from pathlib import Path


def sentence_blocks(path: Path) -> list[list[str]]:
    """The blank-line separated blocks of a CoNLL-U file, lines kept as they are."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def n_words(block: list[str]) -> int:
    """Syntactic words of a block (integer ids; no multiword ranges or empty nodes)."""
    return sum(1 for line in block if not line.startswith("#") and line.split("\t")[0].isdigit())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("n", type=int, help="sentences to keep")
    parser.add_argument("max_words", type=int, help="longest sentence kept, in words")
    args = parser.parse_args()
    kept = [b for b in sentence_blocks(args.source) if 5 <= n_words(b) <= args.max_words]
    kept = kept[: args.n]
    args.target.write_text("".join("".join(b) + "\n" for b in kept), encoding="utf-8")
    print(f"{args.target}: {len(kept)} sentences, {sum(map(n_words, kept))} words")


if __name__ == "__main__":
    main()
