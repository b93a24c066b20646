"""Regenerate docs/findings.md: every number in it comes from this script's run (issue #13).

Sections (``--sections``, default all; each cached as JSON under ``--work``):

* a. held-out top / random (mean ± sd) / bottom at k = 10, 50, 100 for every registered
  supervised method (rank on EWT train sentences, evaluate on EWT dev), through the
  functions of ``bench/methods.py``;
* b. closed- vs open-class localization (Durrani et al. 2020): the fewest top neurons whose
  one-vs-rest probe keeps 95% of the gain over the majority class, per tag;
* c. layer distribution of each tag's top neurons (survey Fig. 2), table and PNG;
* d. ablation selectivity of a causal LM (SmolLM2): Δ loss on the concept's tokens − Δ on
  other tokens, top-k vs layer-matched random-k vs bottom-k;
* e. knowledge-neuron specificity: the fact's drop vs other facts vs random neurons,
  paraphrase agreement;
* f. steering with its controls: none / top / random sets, a tagger's concept score.

Resumable: a section whose cached JSON (``--work``/``<section>.json``) was computed with the
same settings is reused (``--force`` recomputes); stores are cached too. The markdown holds
every section cached for the current settings, so sections can be computed in separate runs
and the last run writes the whole file. ``--quick`` is a small smoke run.

Usage: python scripts/findings.py [--sections a,b,c,d,e,f] [--quick] [--work DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import findings_causal  # noqa: E402  (sibling modules of this script)
import findings_probing  # noqa: E402

EWT = Path("/work/shared/data/ud_ewt")
SECTIONS: dict[str, tuple[str, Callable[..., dict], Callable[[dict], str]]] = {
    "a": ("Held-out top / random / bottom for every method",
          findings_probing.compute_methods, findings_probing.render_methods),
    "b": ("Closed- vs open-class localization",
          findings_probing.compute_localization, findings_probing.render_localization),
    "c": ("Layer distribution of the top neurons",
          findings_probing.compute_layers, findings_probing.render_layers),
    "d": ("Ablation selectivity on a causal LM",
          findings_causal.compute_ablation, findings_causal.render_ablation),
    "e": ("Knowledge-neuron specificity",
          findings_causal.compute_knowledge, findings_causal.render_knowledge),
    "f": ("Steering with its controls",
          findings_causal.compute_steering, findings_causal.render_steering),
}
#: Settings of a full run and of ``--quick`` (a smoke run: tiny subsets, few steps).
FULL = {"train_sentences": 1000, "n_random": 5, "ks": [10, 50, 100], "loc_target": 0.95,
        "layer_k": 20, "lm_train_sentences": 200, "lm_dev_sentences": 100, "lm_max_words": 25,
        "ablate_k": 50, "ablate_concepts": ["NOUN"], "repeats": 5, "kn_steps": 5,
        "kn_layers": None, "steer_k": 50, "steer_prompts": 10, "steer_tokens": 20}
QUICK = {**FULL, "train_sentences": 40, "ks": [2, 8], "layer_k": 5,
         "lm_train_sentences": 20, "lm_dev_sentences": 10, "ablate_k": 4,
         "ablate_concepts": ["NOUN"], "kn_steps": 2, "steer_k": 4, "steer_prompts": 3,
         "steer_tokens": 5}


class Context:
    """What every section needs: settings, the cache folder, lazily loaded models."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work
        self.settings: dict[str, Any] = dict(QUICK if args.quick else FULL)
        self.settings.update({"seed": args.seed, "train": str(args.train), "dev": str(args.dev),
                              "encoder": args.encoder, "lm": args.lm,
                              "closed": args.closed, "open": args.open})
        self._cache: dict[str, Any] = {}

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)

    def memo(self, key: str, build: Callable[[], Any]) -> Any:
        """Build an object once per run (stores, rankings, models)."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def path(self, name: str) -> Path:
        self.work.mkdir(parents=True, exist_ok=True)
        return self.work / name


#: The settings each section depends on (its cache is reused while these are unchanged).
_COMMON = ["seed", "train", "dev"]
RELEVANT = {
    "a": [*_COMMON, "encoder", "train_sentences", "n_random", "ks"],
    "b": [*_COMMON, "encoder", "train_sentences", "loc_target", "closed", "open"],
    "c": [*_COMMON, "encoder", "train_sentences", "layer_k", "closed", "open"],
    "d": [*_COMMON, "lm", "lm_train_sentences", "lm_dev_sentences", "lm_max_words",
          "ablate_k", "ablate_concepts", "repeats"],
    "e": ["seed", "lm", "kn_steps", "kn_layers", "repeats"],
    "f": [*_COMMON, "lm", "lm_train_sentences", "lm_dev_sentences", "lm_max_words",
          "ablate_concepts", "repeats", "steer_k", "steer_prompts", "steer_tokens"],
}


def section_key(ctx: Context, name: str) -> dict[str, Any]:
    """The settings a section's cached result must match."""
    return {"section": name, **{k: ctx.settings[k] for k in RELEVANT[name]}}


def _matches(cached: dict, key: dict) -> bool:
    return all(cached.get("key", {}).get(k) == v for k, v in key.items())


def run_section(ctx: Context, name: str, force: bool) -> dict | None:
    """Compute (or reuse) a section; returns its result, cached as JSON."""
    path = ctx.path(f"{name}.json")
    key = section_key(ctx, name)
    if path.exists() and not force:
        cached = json.loads(path.read_text())
        if _matches(cached, key):
            ctx.log(f"section {name}: reusing {path}")
            return cached["result"]
    ctx.log(f"section {name}: {SECTIONS[name][0]} ...")
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    result = SECTIONS[name][1](ctx)
    result["_run"] = {"seconds": time.perf_counter() - start,
                      "load_before": load_before, "load_after": os.getloadavg()[0],
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    path.write_text(json.dumps({"key": key, "result": result}, indent=1, default=_json))
    ctx.log(f"section {name}: done in {result['_run']['seconds']:.0f} s -> {path}")
    return result


def cached_section(ctx: Context, name: str) -> dict | None:
    path = ctx.path(f"{name}.json")
    if not path.exists():
        return None
    cached = json.loads(path.read_text())
    return cached["result"] if _matches(cached, section_key(ctx, name)) else None


def _json(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return float(value)


def render(ctx: Context, results: dict[str, dict | None], command: str) -> str:
    """The whole findings document."""
    load = os.getloadavg()
    shown = ("train", "dev", "encoder", "lm")
    stores = sorted(str(p) for p in ctx.work.glob("*") if (p / "neuronscope.json").exists())
    lines = [
        "# Findings on real models and data",
        "",
        "<!-- generated by scripts/findings.py, do not edit: rerun the script instead -->",
        "",
        "**Generated by `scripts/findings.py`; do not edit by hand.** Every number below "
        "comes from the run recorded here; each section says which settings it used.",
        "",
        f"* Written: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"* Command: `{command}`.",
        f"* Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average when written "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min). The machine is "
        "shared, so the seconds reported are rough.",
        f"* Cache (`--work`): `{_rel(ctx.work)}`; stores: "
        + (", ".join(f"`{_rel(Path(s))}`" for s in stores) or "none") + ".",
        f"* Data: train `{ctx.settings['train']}`, dev `{ctx.settings['dev']}`"
        " (UD English EWT, CC BY-SA 4.0, in a full run). Encoder: "
        f"`{ctx.settings['encoder'] or 'all-MiniLM-L6-v2 (embedded default)'}`; causal LM: "
        f"`{ctx.settings['lm']}`.",
        "* Settings (each section lists those it used): "
        f"`{json.dumps({k: v for k, v in ctx.settings.items() if k not in shown})}`"
        + (" (**--quick smoke run**, not findings)" if ctx.args.quick else "") + ".",
        "",
    ]
    for name, (title, _, render_fn) in SECTIONS.items():
        lines += [f"## {name}. {title}", ""]
        result = results.get(name)
        if result is None:
            lines += ["Not computed for these settings: run the script with "
                      f"`--sections {name}`.", ""]
            continue
        run = result.get("_run", {})
        lines += [render_fn(result).rstrip(), ""]
        if run:
            lines += [f"_Computed {run['date']} in {run['seconds']:.0f} s (load average "
                      f"{run['load_before']:.1f} before, {run['load_after']:.1f} after)._", ""]
    lines += ["## Not regenerated", "",
              "Earlier hand-assembled sections (unsupervised analysis, explanations, SAE "
              "comparison, MiniLM intervention check) were dropped: this script does not "
              "recompute them. Their scripts (`examples/unsupervised_and_explanations.py`, "
              "`examples/smollm2_causation.py`) still print them.", ""]
    return "\n".join(lines)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="sections to compute now (others are taken from the cache)")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--force", action="store_true", help="recompute cached sections")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / "findings")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "findings.md")
    parser.add_argument("--figures", type=Path, default=None,
                        help="folder of the PNG figures (default: docs/figures next to --out)")
    parser.add_argument("--train", type=Path, default=EWT / "en_ewt-ud-train.conllu")
    parser.add_argument("--dev", type=Path, default=EWT / "en_ewt-ud-dev.conllu")
    parser.add_argument("--encoder", default=None,
                        help="model of sections a-c (default: the embedded MiniLM)")
    parser.add_argument("--lm", default="smollm2", help="causal LM of sections d-f")
    parser.add_argument("--closed", nargs="+", default=["DET", "PUNCT", "CCONJ", "ADP"])
    parser.add_argument("--open", nargs="+", default=["NOUN", "VERB", "ADJ", "ADV"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.figures is None:
        args.figures = args.out.parent / "figures"
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; valid: {', '.join(SECTIONS)}")
    for path in (args.train, args.dev):
        if not path.exists():
            raise SystemExit(f"needs {path} (a CoNLL-U file with UPOS); not found")
    ctx = Context(args)
    command = "python scripts/findings.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    results = {}
    for name in SECTIONS:
        results[name] = (run_section(ctx, name, args.force) if name in wanted
                         else cached_section(ctx, name))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(ctx, results, command.strip()))
    ctx.log(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
