"""The device of the GPU suite's tests: CUDA, or the CPU for a dry run (``TAAE_GPU_DRY_RUN=1``).

``benchmarks/gpu_suite.sh --device cpu`` sets the variable so that every test here that takes ``gpu_device`` runs
its whole code path on the CPU (numbers against themselves, so a dry run proves the suite runs, not that CUDA is
right); the tests that need CUDA itself (FlexAttention) do not take the fixture and stay skipped.
"""

from __future__ import annotations

import os

import pytest
import torch

DRY_RUN = os.environ.get("TAAE_GPU_DRY_RUN") == "1"


@pytest.fixture
def gpu_device() -> torch.device:
    if DRY_RUN:
        yield torch.device("cpu")
        return
    # cuDNN convolutions default to TF32, whose 10-bit mantissa is far from the fp32 the CPU reference computes.
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield torch.device("cuda")
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
