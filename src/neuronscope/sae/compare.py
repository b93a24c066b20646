"""Neurons vs SAE features of one layer, concept by concept (``neuronscope compare-units``).

For each concept (one-vs-rest), on a seeded sentence-level split of the store's words:

* **units for 95% of the gain**: units of each kind (the SAE layer's neurons, the SAE's
  features) are ordered by their average precision for the concept on the *training*
  sentences; logistic-regression probes on the top ``k`` (k = 1, 2, 3, 4, 6, 8, 12, ...,
  ``max_units``) are scored on the *held-out* sentences. ``needed`` is the smallest ``k``
  whose accuracy gain over the majority class reaches 95% of the gain of a probe on *all* units
  of that kind (``None``: more than ``max_units``). Both kinds use the same univariate order,
  so the numbers compare localization, not ranking methods.
* **best single unit**: the unit with the best training AP; its AP, IoU (top 0.5% mask) and
  selectivity are reported on the held-out sentences.
* **unit overlap**: Jaccard overlap of the 10 top-AP neurons with the 10 neurons carrying the
  largest decoder weights of the best feature (chance level: about ``10 / width``).

Control (``control=True``): the same statistics for the latents of a *random* SAE of the same
shape and k (unit-norm random decoder rows, ``W_enc = W_dec.T``, ``b_dec`` = the training
rows' mean): an overcomplete TopK code without training. Features that beat neurons but not
this control owe their advantage to the encoding's form, not to what the SAE learned.

Plus the SAE's FVE, L0, dead and dense latents on the held-out rows and, for causal LMs, the
increase of the LM loss when the layer's output is replaced by its SAE reconstruction.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neuronscope.corpus.corpus import Corpus
from neuronscope.errors import NeuronscopeError
from neuronscope.sae.attach import attach, sae_components, weights_hash
from neuronscope.sae.data import evaluate_sae
from neuronscope.sae.model import SparseAutoencoder
from neuronscope.store.store import ActivationStore

GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
KINDS = ("neurons", "features", "random")


@dataclass
class UnitStats:
    """One kind of unit for one concept."""

    needed: int | None  # units for 95% of the full probe's gain (None: > max_units)
    full_accuracy: float
    curve: dict[int, float]  # k -> held-out accuracy
    best_unit: str
    best_ap: float
    best_iou: float
    best_selectivity: float


@dataclass
class ConceptComparison:
    """Neurons vs features for one concept."""

    concept: str
    n_train: int
    n_test: int
    majority_accuracy: float
    neurons: UnitStats
    features: UnitStats
    overlap_top10: float  # Jaccard: top-AP neurons vs the best feature's top decoder neurons
    random: UnitStats | None = None  # the random-SAE control


@dataclass
class Comparison:
    """The result of :func:`compare_units`."""

    layer: str
    n_neurons: int
    n_features: int
    sae_metrics: dict[str, Any]
    lm_loss: dict[str, Any] | None
    concepts: list[ConceptComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    def table(self) -> Any:
        """A Rich table of the per-concept comparison."""
        from rich.table import Table

        m = self.sae_metrics
        title = (f"{self.layer}: {self.n_neurons} neurons vs {self.n_features} SAE features "
                 f"(held-out FVE {m['fve']:.3f}, L0 {m['l0']:.1f}, dead {m['dead_fraction']:.1%})")
        if self.lm_loss:
            title += f", LM loss +{self.lm_loss['increase']:.3f}"
        table = Table(title=title)
        for col in ("concept", "test n", "majority", "neurons 95%", "features 95%",
                    "random-SAE 95%", "best neuron AP/IoU/sel", "best feature AP/IoU/sel",
                    "random-SAE AP", "overlap"):
            table.add_column(col, justify="left" if col == "concept" else "right")
        for c in self.concepts:
            table.add_row(c.concept, str(c.n_test), f"{c.majority_accuracy:.3f}",
                          _needed(c.neurons), _needed(c.features),
                          _needed(c.random) if c.random else "-", _best(c.neurons),
                          _best(c.features), f"{c.random.best_ap:.2f}" if c.random else "-",
                          f"{c.overlap_top10:.2f}")
        return table


def _needed(s: UnitStats) -> str:
    return f"{s.needed}" if s.needed is not None else f">{max(s.curve)}"


def _best(s: UnitStats) -> str:
    return f"{s.best_ap:.2f}/{s.best_iou:.2f}/{s.best_selectivity:.2f}"


def render_markdown(result: Comparison) -> str:
    """The comparison as a Markdown table (what ``--out`` writes beside the JSON)."""
    m = result.sae_metrics
    lines = [f"# Neurons vs SAE features: {result.layer}", "",
             f"{result.n_neurons} neurons vs {result.n_features} features. SAE on the held-out "
             f"rows: FVE {m['fve']:.3f}, L0 {m['l0']:.1f}, dead latents "
             f"{m['dead_fraction']:.1%}, dense latents {m['dense_fraction']:.1%}.", ""]
    if result.lm_loss:
        lines += [f"LM loss {result.lm_loss['clean']:.3f} -> {result.lm_loss['spliced']:.3f} "
                  f"with the SAE reconstruction spliced in (+{result.lm_loss['increase']:.3f}).",
                  ""]
    lines += ["| concept | test n | majority | neurons for 95% | features for 95% | "
              "random-SAE for 95% | acc@1 neuron / feature / random | "
              "best neuron (AP/IoU/sel) | best feature (AP/IoU/sel) | random-SAE best AP | "
              "overlap@10 |",
              "|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|"]
    for c in result.concepts:
        rnd = c.random
        lines.append(f"| {c.concept} | {c.n_test} | {c.majority_accuracy:.3f} | "
                     f"{_needed(c.neurons)} | {_needed(c.features)} | "
                     f"{_needed(rnd) if rnd else '-'} | {c.neurons.curve[1]:.3f} / "
                     f"{c.features.curve[1]:.3f} / {rnd.curve[1] if rnd else float('nan'):.3f} | "
                     f"{c.neurons.best_unit} {_best(c.neurons)} | {c.features.best_unit} "
                     f"{_best(c.features)} | {f'{rnd.best_ap:.2f}' if rnd else '-'} | "
                     f"{c.overlap_top10:.2f} |")
    lines += [""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _scores(x: np.ndarray, y: np.ndarray, concepts: list[str]) -> dict[str, np.ndarray]:
    """``(C, D)`` AP, IoU and selectivity of every column for every concept."""
    from neuronscope.methods.average_precision import AveragePrecision
    from neuronscope.methods.iou import IoU
    from neuronscope.methods.selectivity import Selectivity

    out = {}
    for key, method in (("ap", AveragePrecision(concepts=concepts, n_jobs=1)),
                        ("iou", IoU(concepts=concepts)), ("sel", Selectivity(concepts=concepts))):
        method.rank(x, y)
        order = [list(method.concepts_).index(c) for c in concepts]
        out[key] = np.asarray(method.scores_)[order]
    return out


def _probe_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                    y_test: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    probe.fit(x_train, y_train)
    return float((probe.predict(x_test) == y_test).mean())


def _unit_stats(x: np.ndarray, names: list[str], target: np.ndarray, train: np.ndarray,
                test: np.ndarray, train_scores: dict[str, np.ndarray],
                test_scores: dict[str, np.ndarray], ci: int, majority: float,
                max_units: int, seed: int) -> tuple[UnitStats, np.ndarray]:
    order = np.argsort(-train_scores["ap"][ci], kind="stable")
    yt, ye = target[train], target[test]
    full = _probe_accuracy(x[train], yt, x[test], ye, seed)
    gain = full - majority
    curve: dict[int, float] = {}
    needed = None
    for k in (g for g in GRID if g <= min(max_units, x.shape[1])):
        cols = np.sort(order[:k])
        acc = _probe_accuracy(x[train][:, cols], yt, x[test][:, cols], ye, seed)
        curve[k] = acc
        if gain > 0 and acc - majority >= 0.95 * gain:
            needed = k
            break
    best = int(order[0])
    return UnitStats(needed, full, curve, names[best], float(test_scores["ap"][ci, best]),
                     float(test_scores["iou"][ci, best]),
                     float(test_scores["sel"][ci, best])), order


def compare_units(store: ActivationStore, corpus: Corpus, labels: str,
                  sae_dir: str | os.PathLike, name: str = "sae", max_units: int = 64,
                  test_size: float = 0.3, concepts: list[str] | None = None,
                  min_examples: int = 20, model: str | None = None, lm_sentences: int = 200,
                  control: bool = True, random_state: int = 0,
                  device: str | None = None, dtype: str = "float32") -> Comparison:
    """Compare the SAE layer's neurons with the SAE's features (see the module doc).

    The store should hold words the SAE was *not* trained on (e.g. the dev set): the SAE is
    attached to it as component ``name`` first when missing or made by another SAE. The
    neurons and features of that one layer are loaded into memory. ``device`` and ``dtype``
    (compute dtype) place the model of the LM-loss check.
    """
    from neuronscope.evaluation._common import train_test_masks

    store.check_corpus(corpus)
    sae = SparseAutoencoder.load(sae_dir)
    record = sae_components(store.meta["components"]).get(name)
    if record is None or record.get("weights_sha256") != weights_hash(sae_dir):
        store = attach(store, sae_dir, name=name, overwrite=record is not None)
        record = sae_components(store.meta["components"])[name]
    component, layer = record["component"], int(record["layer"])
    notes = []
    if sae.neuronscope.get("store_fingerprint") == store.fingerprint:
        notes.append("this store is the one the SAE was trained on: only the SAE's own "
                     "held-out sentences are unseen, the rest is in-sample")
    y_all = corpus.labels_array(labels).astype(str)
    train, test = train_test_masks(store.n_words, test_size, store.sentence_ids(), random_state)
    if concepts is None:
        values, counts_tr = np.unique(y_all[train], return_counts=True)
        counts_te = {v: int((y_all[test] == v).sum()) for v in values}
        concepts = [str(v) for v, c in zip(values, counts_tr, strict=True)
                    if c >= min_examples and counts_te[v] >= min_examples]
    missing = [c for c in concepts if c not in set(y_all)]
    if missing:
        raise NeuronscopeError(f"concepts not in label layer {labels!r}: {', '.join(missing)}")
    if not concepts:
        raise NeuronscopeError(f"no concept of {labels!r} has {min_examples} examples on both "
                               "sides of the split")
    x = {"neurons": store.layer(component, layer), "features": store.layer(name, layer)}
    lay = store.layout
    names = {"neurons": lay.names(range(lay.layer_slice(component, layer).start,
                                        lay.layer_slice(component, layer).stop)),
             "features": lay.names(range(lay.layer_slice(name, layer).start,
                                         lay.layer_slice(name, layer).stop))}
    kinds = list(KINDS if control else KINDS[:2])
    if control:
        x["random"] = random_sae_codes(sae, x["neurons"], train, random_state)
        names["random"] = [f"L{layer}.random-sae.{i}" for i in range(sae.d_sae)]
    scores_tr = {k: _scores(x[k][train], y_all[train], concepts) for k in kinds}
    scores_te = {k: _scores(x[k][test], y_all[test], concepts) for k in kinds}
    metrics, _ = evaluate_sae(sae, store, component, layer, test)
    result = Comparison(f"L{layer}.{component}", x["neurons"].shape[1],
                        x["features"].shape[1], metrics.to_dict(), None, notes=notes)
    w_dec = sae.W_dec.detach().cpu().numpy()
    for ci, concept in enumerate(concepts):
        target = y_all == concept
        # The majority class of the training words, scored on the held-out words.
        positive_rate = float(target[test].mean())
        majority = positive_rate if target[train].mean() > 0.5 else 1 - positive_rate
        stats = {}
        orders = {}
        for kind in kinds:
            stats[kind], orders[kind] = _unit_stats(
                x[kind], names[kind], target, train, test, scores_tr[kind], scores_te[kind], ci,
                majority, max_units, random_state)
        best_feature = int(orders["features"][0])
        top_dec = set(np.argsort(-np.abs(w_dec[best_feature]))[:10].tolist())
        top_neurons = set(orders["neurons"][:10].tolist())
        jaccard = len(top_dec & top_neurons) / len(top_dec | top_neurons)
        result.concepts.append(ConceptComparison(
            concept, int(train.sum()), int(test.sum()), majority, stats["neurons"],
            stats["features"], jaccard, stats.get("random")))
    result.lm_loss = lm_loss_increase(store, sae, component, layer, corpus, model,
                                      lm_sentences, notes, device=device, dtype=dtype)
    return result


def random_sae_codes(sae: SparseAutoencoder, x: np.ndarray, train: np.ndarray,
                     random_state: int) -> np.ndarray:
    """Latents of an untrained SAE shaped like ``sae`` (the control; see the module doc)."""
    import torch

    gen = torch.Generator().manual_seed(random_state)
    rand = SparseAutoencoder(sae.d_in, sae.d_sae, sae.architecture, sae.k)
    with torch.no_grad():
        w = torch.randn(sae.d_sae, sae.d_in, generator=gen)
        w /= w.norm(dim=1, keepdim=True)
        rand.W_dec.copy_(w)
        rand.W_enc.copy_(w.T)
        rand.b_dec.copy_(torch.from_numpy(x[train].mean(axis=0)))
        return rand.encode(torch.from_numpy(x)).numpy()


def lm_loss_increase(store: ActivationStore, sae: SparseAutoencoder, component: str, layer: int,
                     corpus: Corpus, model: str | None, n_sentences: int,
                     notes: list[str], device: str | None = None,
                     dtype: str = "float32") -> dict[str, Any] | None:
    """Mean next-token loss with and without the layer's output replaced by the SAE's
    reconstruction, over the first ``n_sentences`` sentences; None (with a note) when the
    model is not a causal LM or cannot be loaded offline."""
    import torch

    from neuronscope.errors import ModelLoadError
    from neuronscope.extraction.components import model_sites
    from neuronscope.extraction.hooks import Trace
    from neuronscope.models import load_model

    if n_sentences <= 0:
        return None
    source = model or store.meta["model"]["name"]
    try:
        loaded = load_model(source, device=device, dtype=dtype)
    except ModelLoadError as err:
        notes.append(f"LM-loss check skipped: cannot load {source!r}: {err}")
        return None
    if not loaded.is_causal:
        notes.append(f"LM-loss check skipped: {loaded.name} is not a causal LM")
        return None
    if loaded.fingerprint != store.model_fingerprint:
        notes.append(f"LM-loss check skipped: {source!r} is not the store's model")
        return None
    sites = model_sites(loaded).components.get(component)
    if sites is None or layer not in sites.sites:
        notes.append(f"LM-loss check skipped: no live site for L{layer}.{component}")
        return None
    module, where = sites.sites[layer]
    sae = sae.to(loaded.device)

    def splice(_: str, x: torch.Tensor) -> torch.Tensor:
        return sae(x).to(x.dtype)

    tok = loaded.tokenizer
    losses: dict[str, list[float]] = {"clean": [], "spliced": []}
    with torch.no_grad():
        for sentence in corpus.sentences[:n_sentences]:
            enc = tok(" ".join(sentence), return_tensors="pt", truncation=True,
                      max_length=loaded.max_length).to(loaded.device)
            if enc["input_ids"].shape[1] < 2:
                continue
            losses["clean"].append(float(loaded.model(**enc, labels=enc["input_ids"]).loss))
            with Trace(loaded.model, [module], retain_output=False,
                       edit_output=splice if where == "output" else None,
                       edit_input=splice if where == "input" else None):
                losses["spliced"].append(
                    float(loaded.model(**enc, labels=enc["input_ids"]).loss))
    if not losses["clean"]:
        return None
    clean, spliced = float(np.mean(losses["clean"])), float(np.mean(losses["spliced"]))
    return {"clean": clean, "spliced": spliced, "increase": spliced - clean,
            "sentences": len(losses["clean"]), "site": f"{module} ({where})",
            "note": "the SAE was trained on word rows (subwords aggregated); here it reads "
                    "every token"}


__all__ = ["Comparison", "ConceptComparison", "UnitStats", "compare_units", "lm_loss_increase",
           "render_markdown"]
