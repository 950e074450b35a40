"""Atomic file writes for what a user keeps (the listening page, its images).

A reader (a browser reloading ``report.html``, a second evaluation into the same folder) sees either the old file
or the new one, never a half-written one: the bytes go to a temporary file in the same folder, are flushed to disk
(``fsync``) and then renamed over the target with ``os.replace``, which is atomic within one file system.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DEFAULT_UMASK = 0o022
"""Used where the process umask cannot be read without changing it (no ``/proc``)."""


def _umask() -> int:
    # os.umask can only be read by setting it, which races with other threads creating files; Linux shows it here.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return DEFAULT_UMASK


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; the parent folder must exist. Returns the path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; a report is as readable as any other file the user writes.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """``atomic_write_bytes`` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))
