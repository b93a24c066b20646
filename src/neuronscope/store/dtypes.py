"""Storage dtypes of activation arrays: float32, float16 and bfloat16.

Zarr v3 (zarr-python 3.1) has no bfloat16 data type, so a bfloat16 array is stored as
``uint16`` holding the upper 16 bits of each float32 (sign, 8 exponent bits, 7 mantissa
bits), with the array attribute ``neuronscope_dtype: "bfloat16"``. Any Zarr reader gets the
bits; neuronscope's readers turn them back into float32 (a 16-bit shift, exact). Writing
rounds float32 to nearest, ties to even (what ``torch.bfloat16`` does), and keeps NaN a NaN.

Readers always return float32: the storage dtype only changes the size on disk (float16 and
bfloat16 halve it) and the precision (float16: 11 significant bits, range +-65504;
bfloat16: 8 significant bits, float32's range).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuronscope.errors import NeuronscopeError

STORE_DTYPES = ("float32", "float16", "bfloat16")
#: The array attribute marking uint16 arrays that hold bfloat16 bits.
BFLOAT16_ATTR = "neuronscope_bfloat16"


def check_store_dtype(name: str) -> str:
    """``name`` if it is a storage dtype, else a clear error."""
    if name not in STORE_DTYPES:
        raise NeuronscopeError(f"unknown storage dtype {name!r}; valid: {', '.join(STORE_DTYPES)}")
    return name


def zarr_dtype(name: str) -> np.dtype:
    """The element type of the Zarr array holding activations of storage dtype ``name``."""
    return np.dtype(np.uint16) if check_store_dtype(name) == "bfloat16" else np.dtype(name)


def array_attributes(name: str) -> dict[str, Any]:
    """Attributes to give a Zarr array of storage dtype ``name``."""
    return {BFLOAT16_ATTR: True} if name == "bfloat16" else {}


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float values -> uint16 bfloat16 bits, rounded to nearest even; NaN stays NaN."""
    x = np.ascontiguousarray(values, dtype=np.float32)
    bits = x.view(np.uint32)
    # Round to nearest even on the 16 dropped bits; no overflow into the sign (inf stays inf).
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
               >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        rounded[nan] = np.uint16(0x7FC0)  # a quiet NaN (rounding could carry one into inf)
    return rounded


def encode(values: np.ndarray, store_dtype: str, array_dtype: np.dtype) -> np.ndarray:
    """Activations as the stored array's elements (bfloat16 bits, float16 or float32)."""
    if store_dtype == "bfloat16" and array_dtype == np.uint16:
        return to_bfloat16_bits(values)
    return np.asarray(values).astype(array_dtype, copy=False)


def decode_into(src: np.ndarray, dest: np.ndarray, bfloat16: bool) -> None:
    """Stored elements -> float32, written into ``dest`` (any strides, same shape)."""
    if bfloat16:
        wide = dest.view(np.uint32)
        np.copyto(wide, src, casting="unsafe")
        np.left_shift(wide, np.uint32(16), out=wide)
    else:
        np.copyto(dest, src, casting="unsafe")


def decode(src: Any, bfloat16: bool) -> np.ndarray:
    """Stored elements -> a new float32 array (or ``src`` itself if already float32)."""
    arr = np.asarray(src)
    if not bfloat16:
        return arr.astype(np.float32, copy=False)
    out = np.empty(arr.shape, dtype=np.float32)
    decode_into(arr, out, True)
    return out
