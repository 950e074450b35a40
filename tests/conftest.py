"""Shared fixtures: deterministic seeds, small thread counts, GPU skipping and synthetic speech-like audio."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

DRY_RUN = os.environ.get("TAAE_GPU_DRY_RUN") == "1"
"""The GPU suite's dry run (benchmarks/gpu_suite.py --device cpu): GPU tests taking ``gpu_device`` run on the CPU."""


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    # A dry run of the GPU suite (TAAE_GPU_DRY_RUN=1, DRY_RUN above) runs, on the CPU, the GPU tests
    # that take their device from the gpu_device fixture.
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not (DRY_RUN and "gpu_device" in getattr(item, "fixturenames", ())):
            item.add_marker(skip)


@pytest.fixture
def gpu_device() -> torch.device:
    """CUDA, or the CPU in the GPU suite's dry run (numbers against themselves: it proves the suite runs)."""
    if DRY_RUN:
        yield torch.device("cpu")
        return
    # cuDNN convolutions default to TF32, whose 10-bit mantissa is far from the fp32 the CPU reference computes.
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield torch.device("cuda")
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def synth_speech(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """A voiced, speech-like test signal (1, T): a gliding harmonic source with a syllabic envelope and noise."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * sample_rate)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    f0 = 120 + 30 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 20))
    envelope = 0.5 * (1 - torch.cos(2 * math.pi * 3.0 * t)).clamp(min=0)
    noise = 0.02 * torch.randn(n, generator=g, dtype=torch.float64)
    wav = 0.3 * envelope * voiced / 3 + noise
    return wav.float().unsqueeze(0)


ASSETS = Path(__file__).parent / "assets"


def demo_speech() -> torch.Tensor:
    """A real prompt from the demo speech set (1, T) at 16 kHz, loudness-normalised like every codec input."""
    from taae.io.audio import load_audio, preprocess

    wav, rate = load_audio(ASSETS / "speech_call_fwd.wav")
    return preprocess(wav, rate, 16000)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (for tiny tensors, where a second thread only adds overhead)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def speech():
    return synth_speech


def garble_first_member(tar_path) -> None:
    """Overwrite the first bytes of a tar's first member (a Shar shard's first recording), keeping the tar valid."""
    import io
    import tarfile

    with tarfile.open(tar_path) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    with tarfile.open(tar_path, "w") as t:
        for i, (member, data) in enumerate(members):
            data = b"garbage!!!" + data[10:] if i == 0 else data
            member.size = len(data)
            t.addfile(member, io.BytesIO(data))


def batch_recorder():
    """A LightningModule class with one weight that keeps a copy of every training batch in ``seen``."""
    import lightning

    class Recorder(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def training_step(self, batch, batch_idx):
            self.seen.append(batch.clone())
            return self.w.square().sum() + self.w.sum() * batch.mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Recorder
