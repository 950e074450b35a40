"""Atomic file writes for the listening page and its images: the names the report code uses, on top of the shared
helper :mod:`taae.atomic` (temporary sibling, fsync, ``os.replace``; a failure leaves the previous file as it was).
"""

from __future__ import annotations

from taae.atomic import write_bytes as atomic_write_bytes
from taae.atomic import write_text as atomic_write_text

__all__ = ["atomic_write_bytes", "atomic_write_text"]
