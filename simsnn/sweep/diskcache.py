"""The sweep's disk cache of hardware-independent pieces, bounded in size.

Entries are pickles named by content hash (``trace-*.pkl``, ``workload-*.pkl``,
``profile-*.pkl``). Every entry is written to a temporary file and renamed into place, so a
reader (another worker, a later run) sees a whole file or none, never a torn one. A read
refreshes the entry's modification time; after each write the least recently used entries are
removed until the folder is within its limit (the entry just written is kept). An entry
larger than the whole limit is not written at all (it lives in the worker's memory only).
The limit is stored in the folder (``.limit``) so that every worker process, local or on a
Dask cluster, applies the same one.
"""
from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path
from typing import Any, Callable

#: default size limit of a sweep's cache folder
DEFAULT_LIMIT = 1 << 30
_LIMIT_FILE = ".limit"


def set_limit(cache: str | Path, limit: int | None) -> None:
    """Record ``limit`` (bytes; None: unbounded) for the cache folder and apply it now."""
    path = Path(cache)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f"{_LIMIT_FILE}.{os.getpid()}.tmp"
    tmp.write_text("none" if limit is None else str(int(limit)), encoding="utf-8")
    os.replace(tmp, path / _LIMIT_FILE)
    _limit.cache_clear()
    evict(path, limit)


@functools.lru_cache(maxsize=8)
def _limit(cache: str) -> int | None:
    try:
        text = (Path(cache) / _LIMIT_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return DEFAULT_LIMIT
    return None if text == "none" else int(text)


def entries(cache: str | Path) -> list[tuple[float, int, Path]]:
    """(modification time, bytes, path) of every entry, oldest first."""
    out = []
    try:
        it = os.scandir(cache)
    except OSError:
        return out
    with it:
        for e in it:
            if not e.name.endswith(".pkl") or not e.is_file():
                continue
            try:
                st = e.stat()
            except OSError:  # removed meanwhile
                continue
            out.append((st.st_mtime, st.st_size, Path(e.path)))
    out.sort()
    return out


def evict(cache: str | Path, limit: int | None, keep: Path | None = None) -> None:
    """Remove the least recently used entries until the folder holds at most ``limit``
    bytes (``keep`` is never removed)."""
    if limit is None:
        return
    items = entries(cache)
    total = sum(size for _, size, _ in items)
    for _, size, path in items:
        if total <= limit:
            break
        if keep is not None and path == keep:
            continue
        try:
            path.unlink()
        except OSError:  # another worker removed it first
            pass
        total -= size


def usage(cache: str | Path) -> dict:
    """The folder's entries, bytes and limit (for the sweep's summary)."""
    items = entries(cache)
    return {"dir": str(cache), "files": len(items),
            "bytes": int(sum(size for _, size, _ in items)), "limit_bytes": _limit(str(cache))}


def cached(cache: str | None, name: str, make: Callable[[], Any]) -> Any:
    """``make()``, or its pickled result from ``cache/name``."""
    if cache is None:
        return make()
    path = Path(cache) / name
    try:
        with open(path, "rb") as f:  # an open file stays readable if evicted meanwhile
            v = pickle.load(f)
        try:
            os.utime(path)  # recently used
        except OSError:
            pass
        return v
    except Exception:  # missing, foreign or damaged: (re)compute it and replace the file
        pass
    v = make()
    limit = _limit(str(cache))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(v, f, protocol=pickle.HIGHEST_PROTOCOL)
        if limit is not None and tmp.stat().st_size > limit:
            return v  # larger than the whole cache: kept in memory only
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a write that failed or was not kept leaves nothing
    evict(cache, limit, keep=path)
    return v
