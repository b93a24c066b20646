"""Compositional explanations: planted formulas, greedy equivalence, atoms, errors."""

from __future__ import annotations

import numpy as np
import pytest

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import FingerprintMismatchError, NeuronscopeError, UnknownComponentError
from neuronscope.explanations.compositional import (
    AtomSet,
    CompositionalExplainer,
    Formula,
)

from .conftest import tagged_corpus, write_store


def planted(corpus: Corpus, mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """A neuron that is high exactly on ``mask`` (continuous values, no ties)."""
    rng = np.random.default_rng(seed)
    return (10.0 * mask + rng.random(len(mask))).astype(np.float32)


def exact_alpha(n: int, m: int) -> float:
    """The alpha whose quantile threshold keeps exactly the top ``m`` of ``n`` values."""
    return 1 - (n - m - 0.5) / (n - 1)


def test_a_or_b_comes_first_from_a_store(tagged, tmp_path):
    upos = tagged.labels_array("upos")
    mask = (upos == "NOUN") | (upos == "ADJ")
    a = planted(tagged, mask)
    noise = np.random.default_rng(1).standard_normal((tagged.n_words, 3))
    store = write_store(tmp_path / "s", tagged, np.column_stack([noise[:, :1], a, noise[:, 1:]]))
    explainer = CompositionalExplainer(alpha=exact_alpha(tagged.n_words, int(mask.sum())),
                                       min_count=1)
    (exp,) = explainer.explain(store, tagged, ["L0.hidden.1"])
    assert exp.neuron == "L0.hidden.1" and exp.neuron_id == 1
    assert exp.mask_size == mask.sum()
    best = exp.best
    assert best.formula in ("upos:NOUN OR upos:ADJ", "upos:ADJ OR upos:NOUN")
    assert best.iou == 1.0 and best.coverage == 1.0 and best.precision == 1.0
    assert best.length == 2 and best.n_atoms == 2
    assert set(best.examples) <= {f"noun{i}" for i in range(6)} | {f"adj{i}" for i in range(6)}
    # The best single atom is the larger of the two tags.
    bigger = "NOUN" if (upos == "NOUN").sum() > (upos == "ADJ").sum() else "ADJ"
    assert exp.best_atom.formula == f"upos:{bigger}" and exp.best_atom.iou < 1
    # Formulas are reported best first, distinct.
    scores = [f.score for f in exp.formulas]
    assert scores == sorted(scores, reverse=True)
    assert len({f.formula for f in exp.formulas}) == len(exp.formulas)


def test_and_not_and_relu_threshold(tagged):
    # "NOUN but not noun0": needs AND NOT; alpha=None thresholds at 0 (compexp's NLI setting).
    upos = tagged.labels_array("upos")
    words = np.asarray(tagged.words())
    mask = (upos == "NOUN") & (words != "noun0")
    a = planted(tagged, mask) - 5.0
    (exp,) = CompositionalExplainer(alpha=None, min_count=1).explain(a[:, None], tagged)
    assert exp.threshold == 0.0 and exp.mask_size == mask.sum()
    assert exp.best.formula == "upos:NOUN AND NOT form:noun0"
    assert exp.best.iou == 1.0 and exp.best.length == 3  # NOT counts, as in compexp


def test_length_penalty_prefers_short_formulas(tagged):
    upos = tagged.labels_array("upos")
    a = planted(tagged, (upos == "NOUN") | (upos == "ADJ"))[:, None]
    free = CompositionalExplainer(alpha=None, min_count=1).explain(a - 5, tagged)[0]
    short = CompositionalExplainer(alpha=None, min_count=1, length_penalty=0.3).explain(
        a - 5, tagged)[0]
    assert free.best.n_atoms == 2
    assert short.best.n_atoms == 1 and short.best.score == short.best.iou
    assert all(f.score <= f.iou * 0.3 ** (f.length - 1) + 1e-12 for f in short.formulas)


# ------------------------------------------------------------------ greedy equivalence
def random_problem(seed: int) -> tuple[Corpus, np.ndarray]:
    """A corpus with two random label layers and neurons loosely tied to them."""
    corpus = tagged_corpus(120, seed=seed)
    rng = np.random.default_rng(seed)
    n = corpus.n_words
    extra = [[str(rng.choice(list("abcdefg"))) for _ in s] for s in corpus.sentences]
    corpus = corpus.with_layer("shape", extra)
    codes = np.unique(corpus.labels_array("shape"), return_inverse=True)[1]
    upos = np.unique(corpus.labels_array("upos"), return_inverse=True)[1]
    x = rng.standard_normal((n, 6)) + 1.5 * (codes[:, None] == rng.integers(0, 7, 6)) \
        + 1.5 * (upos[:, None] == rng.integers(0, 5, 6))
    return corpus, x.astype(np.float32)


def greedy_reference(a: np.ndarray, atoms: AtomSet, alpha: float, max_length: int,
                     ops: tuple[str, ...]) -> tuple[str, float]:
    """Naive greedy search with boolean masks: extend the current formula by the best
    (op, atom) while that improves IoU; ties by length, then canonical text."""
    mask = a > np.quantile(a, 1 - alpha)
    masks = [atoms.mask(i) for i in range(atoms.n_atoms)]

    def iou(m: np.ndarray) -> float:
        return (m & mask).sum() / (m | mask).sum()

    def rank(f: Formula, value: float) -> tuple:
        return (-value, f.length, f.key(atoms.names))

    current = min((Formula.leaf(i) for i in range(atoms.n_atoms)),
                  key=lambda f: rank(f, iou(masks[f.atom])))
    cur_mask, cur_iou = masks[current.atom], iou(masks[current.atom])
    for _ in range(max_length - 1):
        best = (rank(current, cur_iou), current, cur_mask, cur_iou)
        for i in range(atoms.n_atoms):
            if i in current.atoms():
                continue
            for op in ops:
                new = {"or": cur_mask | masks[i], "and": cur_mask & masks[i],
                       "and_not": cur_mask & ~masks[i]}[op]
                if new.sum() == cur_mask.sum():
                    continue  # unchanged mask
                f = current.extend(op, i)
                value = iou(new)
                if rank(f, value) < best[0]:
                    best = (rank(f, value), f, new, value)
        _, current, cur_mask, cur_iou = best
    return current.to_str(atoms.names), float(cur_iou)


@pytest.mark.parametrize("seed", [0, 1])
def test_beam_width_one_equals_greedy(seed):
    corpus, x = random_problem(seed)
    explainer = CompositionalExplainer(alpha=0.05, beam=1, max_length=3, min_count=3)
    atoms = explainer.atoms(corpus)
    results = explainer.explain(x, corpus, atoms=atoms)
    wider = CompositionalExplainer(alpha=0.05, beam=10, max_length=3, min_count=3).explain(
        x, corpus, atoms=atoms)
    for j, exp in enumerate(results):
        text, value = greedy_reference(x[:, j], atoms, 0.05, 3, ("or", "and", "and_not"))
        assert exp.best.formula == text
        assert exp.best.iou == pytest.approx(value, abs=1e-12)
        # A wider beam never does worse than greedy.
        assert wider[j].best.score >= exp.best.score - 1e-12


def test_reported_counts_match_direct_evaluation():
    corpus, x = random_problem(3)
    explainer = CompositionalExplainer(alpha=0.05, beam=5, max_length=3, min_count=3,
                                       ops=("or", "and", "and_not", "or_not"))
    atoms = explainer.atoms(corpus)
    exp = explainer.explain(x[:, :2], corpus, atoms=atoms)
    names = {n: i for i, n in enumerate(atoms.names)}
    for j, e in enumerate(exp):
        mask = x[:, j] > np.quantile(x[:, j], 0.95)
        for f in e.formulas:
            fm = _evaluate(f.formula, atoms, names)
            assert f.size == fm.sum()
            assert f.iou == pytest.approx((fm & mask).sum() / (fm | mask).sum())
            assert f.coverage == pytest.approx((fm & mask).sum() / mask.sum())


def _evaluate(text: str, atoms: AtomSet, names: dict[str, int]) -> np.ndarray:
    """Evaluate the left-deep formulas the search writes (brackets only around a prefix)."""
    text = text.strip()
    if text.startswith("("):
        depth = np.cumsum([(ch == "(") - (ch == ")") for ch in text])
        close = int(np.flatnonzero(depth == 0)[0])  # the bracket closing the first one
        left, rest = _evaluate(text[1:close], atoms, names), text[close + 1:].split()
    else:
        parts = text.split()
        left, rest = atoms.mask(names[parts[0]]), parts[1:]
    while rest:
        op, rest = rest[0], rest[1:]
        negate = rest[0] == "NOT"
        if negate:
            rest = rest[1:]
        atom, rest = atoms.mask(names[rest[0]]), rest[1:]
        atom = ~atom if negate else atom
        left = left | atom if op == "OR" else left & atom
    return left


# ------------------------------------------------------------------ atoms and batching
def test_atoms_layers_lexical_and_aliases():
    corpus = Corpus(
        [["Walking", "dogs", "bark"], ["walking", "cats", "sleep"]],
        {"upos": [["VERB", "NOUN", "VERB"], ["VERB", "NOUN", "VERB"]],
         "lemma": [["walk", "dog", "bark"], ["walk", "cat", "sleep"]]},
    )
    atoms = AtomSet.build(corpus, min_count=2)
    assert "upos:VERB" in atoms.names and "upos:NOUN" in atoms.names
    assert "lemma:walk" in atoms.names
    # form:walking has lemma:walk's mask (lowercased forms): kept once, alias recorded.
    assert "form:walking" not in atoms.names and "form:walking" in atoms.aliases["lemma:walk"]
    assert atoms.index("form:walking") == atoms.index("lemma:walk")
    assert "ending:-ng" in atoms.aliases["lemma:walk"]
    # Plural "-s" endings of dogs/cats give the suffix "-ts"? No: only shared suffixes count.
    assert all(atoms.sizes >= 2)
    single = AtomSet.build(corpus, layers=["upos"], lexical=False, min_count=1)
    assert single.names == ["upos:NOUN", "upos:VERB"]
    # A corpus layer named like a lexical group keeps its name; the lexical atoms move aside.
    clash = AtomSet.build(corpus.with_layer("form", corpus.labels["lemma"]), min_count=2)
    assert {"form:walk", "lex-form:walking"} <= set(clash.aliases["lemma:walk"])
    full = AtomSet.build(corpus, min_count=1)
    capped = AtomSet.build(corpus, min_count=1, max_atoms=3)
    # The most frequent atoms survive, in their original order.
    assert capped.n_atoms == 3 and capped.names[1] == "upos:VERB"
    assert sorted(capped.sizes.tolist()) == sorted(full.sizes.tolist())[-3:]


def test_many_neurons_in_blocks_keep_their_order(tagged):
    upos = tagged.labels_array("upos")
    cols = [planted(tagged, upos == t, seed=i) for i, t in enumerate(["NOUN", "VERB", "DET",
                                                                        "ADJ", "ADP"] * 3)]
    x = np.column_stack(cols)
    exps = CompositionalExplainer(alpha=None, min_count=1, block_neurons=4, max_length=2)\
        .explain(x - 5, tagged)
    assert [e.neuron for e in exps] == [f"n{i}" for i in range(15)]
    assert [e.best.formula for e in exps] == [
        f"upos:{t}" for t in ["NOUN", "VERB", "DET", "ADJ", "ADP"] * 3]


def test_constant_neuron_has_no_formula(tagged):
    (exp,) = CompositionalExplainer(min_count=1).explain(
        np.ones((tagged.n_words, 1), np.float32), tagged)
    assert exp.mask_size == 0 and exp.best is None and exp.formulas == []
    assert exp.to_dict()["best_atom"] is None


# ------------------------------------------------------------------ errors
def test_bad_input_errors(tagged, tmp_path):
    store = write_store(tmp_path / "s", tagged,
                        np.random.default_rng(0).standard_normal((tagged.n_words, 4)))
    explainer = CompositionalExplainer(min_count=1)
    with pytest.raises(UnknownComponentError, match="index 7 >= 4"):
        explainer.explain(store, tagged, ["L0.hidden.7"])
    with pytest.raises(UnknownComponentError, match="bad neuron name"):
        explainer.explain(store, tagged, ["nonsense"])
    with pytest.raises(NeuronscopeError, match="no concept atoms"):
        CompositionalExplainer(min_count=10**6).explain(store, tagged, ["L0.hidden.1"])
    with pytest.raises(NeuronscopeError, match="no concept atoms"):
        CompositionalExplainer(lexical=False, layers=[]).explain(store, tagged, ["L0.hidden.1"])
    with pytest.raises(FingerprintMismatchError):
        explainer.explain(store, tagged_corpus(10, seed=5), ["L0.hidden.1"])
    with pytest.raises(NeuronscopeError, match="name the neurons"):
        explainer.explain(store, tagged)
    with pytest.raises(NeuronscopeError, match="no label layer"):
        CompositionalExplainer(layers=["xpos"]).explain(store, tagged, ["L0.hidden.1"])
    for bad in ({"alpha": 1.5}, {"beam": 0}, {"max_length": 0}, {"length_penalty": 0},
                {"ops": ("xor",)}):
        with pytest.raises(NeuronscopeError):
            CompositionalExplainer(**bad).explain(store, tagged, ["L0.hidden.1"])
