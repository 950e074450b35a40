"""Training data: the folder/manifest and lhotse Shar data modules with exact resume, Shar preparation
(``taae.data.prepare``) and the demo speech set (``taae.data.demo``).

The data module is imported on first use so that ``python -m taae.data.demo`` does not pay for importing Lightning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taae.data.datamodule import AudioDataModule
    from taae.data.dataset import AudioDataset, EpochSampler
    from taae.data.files import AudioFile, find_audio_files, scan
    from taae.data.shar import SharDataModule

__all__ = ["AudioDataModule", "AudioDataset", "AudioFile", "EpochSampler", "SharDataModule", "find_audio_files",
           "scan"]
_MODULES = {"AudioDataModule": "taae.data.datamodule", "SharDataModule": "taae.data.shar",
            "AudioFile": "taae.data.files", "find_audio_files": "taae.data.files", "scan": "taae.data.files"}


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(_MODULES.get(name, "taae.data.dataset")), name)
    raise AttributeError(f"module 'taae.data' has no attribute {name!r}")
