"""The README's code blocks run: every ```python and ```bash / ```shell block of README.md.

Blocks run in README order in one sandbox folder, Python blocks in one shared namespace (a
later block may use ``store`` or ``ranking`` from an earlier one), shell blocks command by
command through the ``neuronscope`` app in-process (Typer's runner: no interpreter start per
command). The default model is the real one the README promises, the shipped MiniLM; the data
are small stand-ins under the names the README uses (:data:`STAND_INS`, cut from the demo
corpus, and :data:`STAND_IN_STORES`, those through MiniLM), so the file runs in about a
minute.

A block that cannot run here (it needs a downloaded or large model, UD EWT, or builds the
environment) carries a marker on the line before it, which this test counts and reports::

    <!-- readme-test: skip (needs SmolLM2 and minutes of model passes) -->

Any other block must run: a new README section with a block that fails here fails the suite,
and a shell line that is not a ``neuronscope`` command fails it too (mark the block instead).
"""

from __future__ import annotations

import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]*(?:\([^)]*\)[^)]*)*)\)"
                    r"\s*-->")
LANGUAGES = {"python": "python", "bash": "shell", "shell": "shell", "sh": "shell",
             "console": "shell"}
#: Skipped blocks allowed at most: they must stay the few that truly cannot run here.
MAX_SKIPPED = 8

#: Files the README names, as the sandbox provides them: name -> (kind, sentences).
#: CoNLL-U files are slices of the demo corpus; stores are those files through MiniLM.
STAND_INS: dict[str, tuple[str, slice]] = {
    "ud.conllu": ("conllu", slice(0, 24)),
    "dev.conllu": ("conllu", slice(100, 180)),  # compare-units needs 20 per side
    "train.conllu": ("conllu", slice(48, 96)),
    "en_ewt-ud-dev.conllu": ("conllu", slice(24, 48)),
    "raw.txt": ("text", slice(0, 5)),
    "sentences.txt": ("text", slice(0, 24)),
}
#: Stores the README reads but no block writes: name -> (stand-in corpus file, random init).
STAND_IN_STORES: dict[str, tuple[str, bool]] = {
    "dev.store": ("dev.conllu", False),
    "train.store": ("train.conllu", False),
    "minilm.store": ("ud.conllu", False),
    "random-init.store": ("ud.conllu", True),
    "news.store": ("dev.conllu", False),
    "reviews.store": ("train.conllu", False),
}


@dataclass
class Block:
    """One fenced code block of the README."""

    language: str  # "python" or "shell"
    code: str
    line: int  # of the opening fence, 1-based
    skip: str | None  # the marker's reason


def readme_blocks(text: str) -> list[Block]:
    """The Python and shell blocks of a Markdown text, with their skip markers.

    A marker applies to the next fenced block when only blank lines lie between them.
    Blocks of other languages (or none, e.g. a folder tree) are not code to run.
    """
    blocks = []
    lines = text.splitlines()
    pending: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^```\s*([\w+-]*)\s*$", line)
        if fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")),
                       None)
            if end is None:
                raise AssertionError(f"README.md:{i + 1}: code block never closed")
            language = LANGUAGES.get(fence.group(1).lower())
            if language is not None:
                blocks.append(Block(language, "\n".join(lines[i + 1:end]), i + 1, pending))
            pending = None
            i = end + 1
            continue
        marker = MARKER.search(line)
        if marker:
            pending = marker.group("reason").strip()
        elif line.strip():
            pending = None
        i += 1
    return blocks


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", code)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def _write_stand_ins(folder: Path) -> None:
    from neuronscope.corpus import load_demo_corpus, read_conllu, write_conllu
    from neuronscope.extraction import extract
    from neuronscope.models import load_model

    corpus = load_demo_corpus()
    for name, (kind, rows) in STAND_INS.items():
        part = corpus.subset(range(*rows.indices(corpus.n_sentences)))
        if kind == "conllu":
            write_conllu(part, folder / name)
        else:
            (folder / name).write_text(
                "\n".join(" ".join(s) for s in part.sentences) + "\n", encoding="utf-8")
    models = {False: load_model(), True: load_model(random_init=True)}
    for name, (source, random_init) in STAND_IN_STORES.items():
        extract(read_conllu(folder / source), folder / name, models[random_init],
                components=["hidden", "mlp"], progress=False)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """The sandbox folder with the stand-in files, as the working directory."""
    folder = tmp_path_factory.mktemp("readme")
    _write_stand_ins(folder)
    old = Path.cwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(old)


def test_readme_blocks_parse():
    """The parser finds every runnable block and its marker (on a small example)."""
    text = ("intro\n```bash\nneuronscope info a.store \\\n  --json  # a comment\n```\n"
            "<!-- readme-test: skip (needs SmolLM2 (135M)) -->\n\n```python\nx = 1\n```\n"
            "```\nsrc/\n```\n```python\ny = 2\n```\n")
    blocks = readme_blocks(text)
    assert [(b.language, b.skip) for b in blocks] == [
        ("shell", None), ("python", "needs SmolLM2 (135M)"), ("python", None)]
    assert shell_commands(blocks[0].code) == [["neuronscope", "info", "a.store", "--json"]]
    assert blocks[2].line == 14


@pytest.mark.slow  # the real MiniLM, as the README promises
def test_readme_code_blocks_run(sandbox, capsys):
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no code blocks"
    skipped = [b for b in blocks if b.skip is not None]
    namespace: dict = {"__name__": "readme"}
    runner = CliRunner()
    timings = []
    for block in blocks:
        if block.skip is not None:
            continue
        start = time.perf_counter()
        where = f"README.md:{block.line}"
        if block.language == "python":
            exec(compile(block.code, where, "exec"), namespace)  # noqa: S102 (our README)
        else:
            for argv in shell_commands(block.code):
                assert argv[0] == "neuronscope", (
                    f"{where}: {shlex.join(argv)!r} is not a neuronscope command; mark the "
                    "block '<!-- readme-test: skip (REASON) -->' if it cannot run in tests")
                result = runner.invoke(app, argv[1:])
                assert result.exit_code == 0, (
                    f"{where}: {shlex.join(argv)} exited {result.exit_code}:\n{result.output}"
                    f"\n{result.exception!r}")
        timings.append((where, time.perf_counter() - start))
    with capsys.disabled():
        print(f"\nREADME blocks: {len(blocks) - len(skipped)} run, {len(skipped)} skipped")
        for b in skipped:
            print(f"  skipped README.md:{b.line}: {b.skip}")
        for where, seconds in timings:
            print(f"  {where}: {seconds:.1f} s")
    assert len(skipped) <= MAX_SKIPPED, [f"README.md:{b.line}: {b.skip}" for b in skipped]
