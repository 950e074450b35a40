"""Training data: the folder/manifest data module with exact resume, and the demo speech set (``taae.data.demo``).

The data module is imported on first use so that ``python -m taae.data.demo`` does not pay for importing Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taae.data.datamodule import AudioDataModule
    from taae.data.dataset import AudioDataset, AudioFile, EpochSampler, find_audio_files, scan

__all__ = ["AudioDataModule", "AudioDataset", "AudioFile", "EpochSampler", "find_audio_files", "scan"]


def __getattr__(name: str):
    if name in __all__:
        module = "taae.data.datamodule" if name == "AudioDataModule" else "taae.data.dataset"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'taae.data' has no attribute {name!r}")
