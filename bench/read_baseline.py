"""Store read benchmarks' shared parts: interleaved timing and an older fast read path.

``--baseline-ref REF`` of ``bench/store.py`` and of ``bench/methods.py``'s
``store_read_gb_per_s`` loads ``src/neuronscope/store/fastread.py`` as of git ``REF`` beside
the current one and times both in the same process, alternating run by run, so that the
load of a shared machine falls on both alike.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FASTREAD = "src/neuronscope/store/fastread.py"


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def fastread_as_of(ref: str) -> ModuleType:
    """``neuronscope.store.fastread`` as of git ``ref``, imported under a name of its own."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{FASTREAD}"],
                            check=True, capture_output=True, text=True).stdout
    name = f"fastread_as_of_{abs(hash(ref))}"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location(name, file.name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it is executed
    spec.loader.exec_module(module)
    os.unlink(file.name)
    return module


@contextmanager
def read_path(store: Any, module: ModuleType) -> Iterator[None]:
    """Reads of ``store`` go through ``module``'s ``plan_for``/``read_region`` meanwhile."""
    import neuronscope.store.store as store_module

    current = store_module.read_region
    store_module.read_region = module.read_region
    saved, store._plans = store._plans, {}
    for name in store.components:
        store._plans[name] = module.plan_for(store._array(name),
                                             store.path / "activations" / name)
    try:
        yield
    finally:
        store_module.read_region = current
        store._plans = saved


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int,
                warm: bool = True) -> dict[str, tuple[float, float, int]]:
    """``name -> (median wall s, median CPU s, result nbytes)``, the calls alternating."""
    walls: dict[str, list[float]] = {name: [] for name in fns}
    cpus: dict[str, list[float]] = {name: [] for name in fns}
    nbytes = {}
    if warm:  # the page cache, and each path's pool and plans
        for fn in fns.values():
            fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            nbytes[name] = fn().nbytes  # the result is freed before the next call
            walls[name].append(time.perf_counter() - w)
            cpus[name].append(time.process_time() - c)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name]), nbytes[name])
            for name in fns}


def with_path(store: Any, module: ModuleType | None,
              fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run through ``module``'s read path (None: the current one)."""
    if module is None:
        return fn

    def run() -> Any:
        with read_path(store, module):
            return fn()

    return run
