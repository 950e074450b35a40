"""Atomic writes for the files a scaling study keeps (results, tables, fits, plots).

A study runs for hours and is meant to be interrupted and resumed: a half-written ``result.json`` would mark a
rung as finished with garbage in it. Every file is written to a temporary file in the same folder, flushed to
disk (fsync) and renamed over the target (``os.replace`` is atomic within one file system). Text goes through
:mod:`taae.io.atomic`; ``taae.io.atomic.write_with`` is the same for writers that need a path (checkpoints, figures).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taae.io.atomic import write_text as atomic_write_text


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, text)


def _finite(obj: Any) -> Any:
    # JSON has no NaN/inf: write null so that every parser reads the file.
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(_finite(data), indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[dict]) -> Path:
    """One row per dict; missing keys and non-finite floats are written as empty cells."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
                         for k, v in row.items()})
    return write_text(path, buffer.getvalue())


def read_csv(path: str | Path, what: str = "table") -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
