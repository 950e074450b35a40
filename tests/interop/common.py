"""Shared by the interop tests: the committed fixtures and the inputs they were made from.

The fixtures come from the official packages (``scripts/make_interop_fixtures.py``, run in the venvs of
``scripts/official_env.sh``); these tests only read them, through taae's converters.
"""

from __future__ import annotations

import hashlib
import json
import math
import wave
from functools import cache
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "interop"
STABLE_CODEC_DIR = FIXTURES / "stable_codec_small"
DAC_FILE = FIXTURES / "dac_tiny" / "weights.pth"
DAC_PACKAGE_FILE = FIXTURES / "dac_tiny" / "weights_package.pth"  # DAC.save's default torch.package archive
SCHEMA_DIR = FIXTURES / "stable_codec_schema"  # full-schema configs of the small model, per SAT version
TRAINED_DIR = FIXTURES / "stable_codec_trained"  # stable-codec's training wrapper's Lightning checkpoint
SPEECH = ROOT / "tests" / "assets" / "speech_call_fwd.wav"
PRESETS = ("1x46656_400bps", "2x15625_700bps", "4x729_1000bps")


def speech(seconds: float) -> torch.Tensor:
    """(1, 1, T): the asset's PCM16 / 32768 tiled to length, exactly as the fixture generator builds it."""
    with wave.open(str(SPEECH)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    n = int(round(seconds * 16000))
    pcm = np.tile(pcm, math.ceil(n / len(pcm)))[:n]
    return torch.from_numpy(pcm.astype(np.float32) / 32768.0).reshape(1, 1, n)


def checked_speech(seconds: float, sha: str) -> torch.Tensor:
    x = speech(seconds)
    assert hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16] == sha, "fixture input drifted from the asset"
    return x


@cache
def outputs(name: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of ``<name>.safetensors`` / ``.json`` under the fixtures."""
    return load_file(str(FIXTURES / f"{name}.safetensors")), json.loads((FIXTURES / f"{name}.json").read_text())
