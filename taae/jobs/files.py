"""Atomic file writes for the files a job leaves behind: temp file in the same folder, fsync, ``os.replace``.

A reader (or a re-run after a kill) sees either the old file or the complete new one, never a torn write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from taae.atomic import atomic_write, fsync_dir


def fsync_replace(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Flush ``src`` to disk and rename it over ``dst`` (same file system), then flush the folder entry."""
    with open(src, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)
    return Path(dst)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, then move it into place atomically (``taae.atomic``)."""
    with atomic_write(path, "wb") as f:
        write(f)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, value: Any) -> Path:
    return write_atomic(path, lambda f: f.write((json.dumps(value, indent=2) + "\n").encode()))

