"""Checks of NeuroX activation files on import: a damaged or odd file is refused with the file,
the sentence or line, and the problem (never a traceback, never silently converted data)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neuronscope.errors import CorpusFormatError, NeuronscopeError

__all__ = ["check_data_kind", "check_size", "reading_errors", "values_array"]


def check_data_kind(path: Path, where: str, dtype: np.dtype) -> None:
    """Activations must be real numbers: strings, booleans and complex values are refused
    (complex ones would silently lose their imaginary part)."""
    if dtype.kind == "c":
        raise CorpusFormatError(f"{where}: complex activations ({dtype}) are not supported",
                                str(path))
    if dtype.kind not in "fiu":
        raise CorpusFormatError(f"{where}: activations must be numbers, found data of type "
                                f"{dtype}", str(path))


def check_size(path: Path, n_layers: int, n_neurons: int) -> None:
    """A file with zero layers or zero neurons holds no activations."""
    if n_layers < 1 or n_neurons < 1:
        raise CorpusFormatError(f"the file has {n_layers} layer(s) x {n_neurons} neuron(s): "
                                "no activations", str(path))


def values_array(values: Sequence[Any], path: Path, line_no: int, word: int) -> np.ndarray:
    """The ``values`` lists of one word's layers as float32, refusing non-numeric entries
    (``"1.5"`` strings or ``true`` would otherwise be converted silently)."""
    arr = np.asarray(values)
    if arr.dtype == object:
        raise CorpusFormatError(f"word {word}: 'values' are of unequal lengths or not flat "
                                "lists of numbers", str(path), line_no)
    if arr.dtype.kind not in "fiu":
        raise CorpusFormatError(f"word {word}: 'values' must be numbers, found {arr.dtype}",
                                str(path), line_no)
    if arr.ndim != 2:
        raise CorpusFormatError(f"word {word}: each layer's 'values' must be a list of numbers",
                                str(path), line_no)
    return arr.astype(np.float32)


@contextlib.contextmanager
def reading_errors(path: Path) -> Iterator[None]:
    """Turn low-level read failures of a damaged file into one clear error naming it."""
    try:
        yield
    except NeuronscopeError:
        raise
    except UnicodeDecodeError as err:
        raise CorpusFormatError(f"not UTF-8 text (byte {err.start} of a line): NeuroX JSON "
                                "files are UTF-8", str(path)) from None
    except RecursionError:
        raise CorpusFormatError("JSON nested too deeply", str(path)) from None
    except OSError as err:
        # h5py reports truncated or corrupt files as OSError ("unable to open", "truncated").
        raise CorpusFormatError(f"cannot read the file (truncated or damaged?): {err}",
                                str(path)) from None
