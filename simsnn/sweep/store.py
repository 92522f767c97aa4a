"""The results store of a sweep: ``results.jsonl``, one JSON object per finished point.

Each line is written with a single ``write`` on a file opened for appending and made durable
(``fsync``) before the next point counts. A process killed at any moment (``kill -9``
included) therefore leaves whole lines, plus at worst one partial last line if the machine
itself went down mid-write; opening the store again drops such a tail (a line without its
newline, or one that does not parse) before anything is appended, and ``--resume`` skips the
points whose ``point_id`` is already there, so no line is ever duplicated.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from simsnn.errors import SimsnnError
from simsnn.experiment import json_ready


class ResultStore:
    """Append-only JSON-lines file of finished points."""

    def __init__(self, path: str | Path, resume: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = []
        if self.path.exists() and self.path.stat().st_size and not resume:
            # a fresh run never silently mixes with (or destroys) an earlier one (an empty
            # file, left by a run that stopped before its first point, is nothing to lose)
            raise SimsnnError(f"{self.path} exists: pass --resume to continue that sweep "
                                  f"or choose another output folder")
        if self.path.exists():
            self._recover()
        self.done = {r["point_id"] for r in self.records}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _recover(self) -> None:
        data = self.path.read_bytes()
        good = 0
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                break  # a torn last line
            try:
                rec = json.loads(data[pos:nl])
            except ValueError:
                break  # damaged: keep what came before
            if isinstance(rec, dict) and "point_id" in rec:
                self.records.append(rec)
            pos = good = nl + 1
        if good < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())

    def append(self, record: dict) -> None:
        """Write one finished point durably; a point already stored is not written again."""
        if record["point_id"] in self.done:
            return
        line = json.dumps(_finite(json_ready(record)), sort_keys=True, allow_nan=False) + "\n"
        data = line.encode()
        n = os.write(self._fd, data)
        if n != len(data):  # pragma: no cover - regular files write whole buffers
            raise OSError(f"short write to {self.path}")
        os.fsync(self._fd)
        self.done.add(record["point_id"])
        self.records.append(record)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _finite(obj):
    """NaN and infinities become null (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def read_results(path: str | Path) -> list[dict]:
    """The whole lines of a results file (a torn tail is ignored, the file left as is)."""
    out = []
    with open(path, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                out.append(json.loads(raw))
            except ValueError:
                break
    return out
