"""A store's metadata file: its name, format, atomic writes and reading with clear errors."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from neuronscope.errors import DamagedStoreError, StoreError
from neuronscope.io import atomic_write_json

META_FILE = "neuronscope.json"
FORMAT = "neuronscope-activation-store"
#: 2 added the chunk manifest; version 1 stores are read without chunk checks.
FORMAT_VERSION = 2


def now() -> str:
    """The current UTC time, as recorded in the metadata."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Mapping[str, Any], indent: int | None = 2) -> None:
    """Write JSON so that readers see either the old or the new file, never half of one."""
    atomic_write_json(path, data, indent=indent)


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read a store's metadata, with a clear error when the folder is not a store."""
    meta_path = Path(path) / META_FILE
    if not meta_path.exists():
        raise StoreError(f"{path} is not a neuronscope activation store (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedStoreError(f"store {path} is damaged: {meta_path}: corrupt metadata: "
                                f"{err}") from None
    if not isinstance(meta, dict):
        raise DamagedStoreError(f"store {path} is damaged: {meta_path} is not a JSON object")
    if meta.get("format") != FORMAT:
        raise StoreError(f"{meta_path}: not a neuronscope store (format {meta.get('format')!r})")
    return meta
