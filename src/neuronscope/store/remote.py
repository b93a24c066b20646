"""Stores on object stores and other fsspec file systems (``s3://``, ``gs://``, ``memory://``).

A store at a URL is the same folder of files as a local one. neuronscope reads and writes it
through a **local mirror** (under ``NEURONSCOPE_CACHE``, default ``~/.cache/neuronscope/stores``),
so every local guarantee and the fast read path apply unchanged:

- **reading** (:func:`local_store`): the store's files are downloaded once into the mirror
  (``fsspec``'s ``get``); a later open downloads again only when the remote store
  changed (its metadata, manifest, or any object's size or ETag/modification time). Every
  file is then checked against the manifest (sizes and CRC-32C) as for a local store, so
  a bad transfer is an error;
- **writing** (:func:`publish`): extraction writes the local mirror (atomic creation,
  resumable, locked), then uploads it: every data file first, ``manifest.json`` next and
  ``neuronscope.json`` last. On S3 and GCS each object upload is atomic, so a reader sees
  either the previous metadata or the new one, and the new ``neuronscope.json`` (with
  ``complete: true``) only once every file it lists is there.

What is **not** guaranteed on an object store: the writer lock is local (``flock`` on the
mirror), so two machines writing the same URL at once are not stopped; an upload cut short
leaves the files uploaded so far under the URL (the old metadata, or none, still
describes what a reader may use: run the extraction again to finish it). The mirror needs
local disk for the whole store; stores larger than a machine's disk need a shared file
system instead (a local path on every machine).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from neuronscope.errors import StoreError
from neuronscope.store.meta import META_FILE

MANIFEST = "manifest.json"
VERSION_FILE = ".remote-version"  # in the mirror: which remote version it holds
CACHE_ENV = "NEURONSCOPE_CACHE"
# "s3://b/x", and "s3:/b/x": what pathlib (e.g. a Typer Path argument) makes of the URL.
_URL = re.compile(r"^([a-z][a-z0-9+.-]*):/+(.*)$")


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a store on an fsspec file system rather than a local folder."""
    match = _URL.match(os.fspath(path))
    return match is not None and match.group(1) != "file"


def normalize_url(path: str | os.PathLike) -> str:
    """``s3://bucket/key`` from the URL or from what pathlib made of it (``s3:/bucket/key``)."""
    match = _URL.match(os.fspath(path))
    if match is None:
        raise StoreError(f"{path} is not a URL such as s3://bucket/store")
    return f"{match.group(1)}://{match.group(2).rstrip('/')}"


def _fs(url: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ImportError:  # pragma: no cover - fsspec comes with zarr and dask
        raise StoreError(f"reading {url} needs fsspec (pip install neuronscope[cloud])") from None
    try:
        return url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise StoreError(f"cannot open {url}: {err} (for s3:// install s3fs, for gs:// gcsfs: "
                         "pip install neuronscope[cloud])") from None


def mirror_path(url: str) -> Path:
    """The local folder mirroring the store at ``url``."""
    url = normalize_url(url)
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "neuronscope" / "stores")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", url.split("://", 1)[1])[-60:]
    return root / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def local_store(url: str | os.PathLike) -> Path:
    """The local mirror of the store at ``url``, downloaded or refreshed as needed."""
    url = normalize_url(url)
    fs, root = _fs(url)
    try:
        remote_meta = fs.cat_file(f"{root}/{META_FILE}")
    except FileNotFoundError:
        raise StoreError(f"{url} is not a neuronscope activation store (no {META_FILE})") from None
    except OSError as err:
        raise StoreError(f"cannot read {url}: {err}") from None
    try:
        remote_manifest = fs.cat_file(f"{root}/{MANIFEST}")
    except FileNotFoundError:
        remote_manifest = b""
    fs.invalidate_cache()  # listings cached by an earlier call may predate an upload
    listing = fs.find(root, detail=True)
    # The version of the remote store: metadata, manifest, and every object's size and
    # ETag / modification time (a manifest alone can repeat: the CRC-32C of a shard whose
    # chunks carry their own CRCs is the same for any content of the same size).
    version = hashlib.sha256(remote_meta + remote_manifest + repr(sorted(
        (name, info.get("size"), str(info.get("ETag") or info.get("mtime")
                                     or info.get("LastModified") or info.get("created")))
        for name, info in listing.items())).encode()).hexdigest()
    local = mirror_path(url)
    stamp = local / VERSION_FILE
    if stamp.is_file() and stamp.read_text() == version:
        return local
    tmp = local.with_name(local.name + ".download")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for remote in listing:
            rel = remote[len(root):].lstrip("/")
            if rel in (META_FILE, MANIFEST):
                continue
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(tmp / rel))
        # The metadata read first, not a newer one: files and metadata belong together.
        if remote_manifest:
            (tmp / MANIFEST).write_bytes(remote_manifest)
        (tmp / META_FILE).write_bytes(remote_meta)
        (tmp / VERSION_FILE).write_text(version)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"cannot download {url}: {err}") from None
    shutil.rmtree(local, ignore_errors=True)
    os.replace(tmp, local)
    return local


def publish(local: str | os.PathLike, url: str | os.PathLike) -> None:
    """Upload the local store ``local`` to ``url``: data files, then manifest, then metadata."""
    url = normalize_url(url)
    local = Path(local)
    fs, root = _fs(url)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    last = [local / MANIFEST, local / META_FILE]
    try:
        for path in files:
            if path not in last:
                fs.put_file(str(path), f"{root}/{path.relative_to(local).as_posix()}")
        for path in last:
            if path.is_file():
                fs.pipe_file(f"{root}/{path.name}", path.read_bytes())
    except OSError as err:
        raise StoreError(f"cannot upload {local} to {url}: {err}; the files sent so far stay "
                         "there; run the same command again to finish") from None
