"""How :class:`taae.codec.Codec` runs a model for inference: threads, cached weights, precision, compilation.

Every option but ``precision`` keeps the numbers (within float32 rounding, ≤ 1e-5 relative, tested):

- weight norm: every conv of both codecs is weight-normalised, and a plain forward recomputes ``g·v/‖v‖`` at each
  call; inference caches it once per encode/decode (``torch.nn.utils.parametrize.cached``), bit for bit the same;
- ``threads``: see :mod:`taae.codec.threads` (``"auto"`` probes the machine; a thread count changes the last float bits
  of some GEMMs, so pass a fixed count where tokens must be bit-reproducible run to run);
- ``compile``: ``torch.compile`` of the encoder and decoder (dynamic shapes, so a new input length does not
  recompile), which fuses the elementwise work around the GEMMs.

``precision`` trades accuracy for speed on CPU and is off by default; its cost at 700 bps is measured on the demo
test split by ``benchmarks/cpu_inference.py --quality``:

- ``int8``: dynamic int8 quantisation of every ``nn.Linear`` (per-tensor weights, activations quantised per call;
  ``torch.ao.quantization.quantize_dynamic``, fbgemm). The transformer's GEMMs are ~80% of a TAAE's CPU time, and
  fbgemm's int8 GEMM ran 1.3-1.5× faster than MKL's fp32 one on AVX2 (1500×768×6144, one core). CPU only.
- ``bf16``: CPU autocast to bfloat16 (the FSQ and token math stay fp32/int64). Pays off only on CPUs with bf16
  matrix instructions (AVX512-BF16, AMX); without them oneDNN emulates it and it is slower than fp32.

Shape legend: B batch, T samples, K tokens per frame, S frames (as in :mod:`taae.codec`).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from taae.codec.threads import ThreadPolicy

__all__ = ["PRECISIONS", "InferenceOptions", "prepare"]

PRECISIONS = ("fp32", "int8", "bf16")


@dataclass
class InferenceOptions:
    """Inference settings of a :class:`~taae.codec.Codec` (all defaults keep the model's numbers)."""

    threads: int | str | None = None
    """CPU intra-op threads: None (torch's setting), a count, or "auto" (probe the machine, see taae.codec.threads)."""
    precision: str = "fp32"
    """fp32 | int8 (dynamic quantisation of the Linear layers, CPU) | bf16 (CPU autocast)."""
    compile: bool = False
    """torch.compile the encoder and decoder (dynamic shapes); the first call of each pays the compile."""

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        self.policy = ThreadPolicy(self.threads)  # validates threads

    def check_device(self, device: torch.device) -> None:
        if self.precision != "fp32" and device.type != "cpu":
            raise ValueError(f"precision={self.precision!r} is a CPU mode; on {device.type} use precision='fp32' "
                             "(training configs run bf16-mixed on GPUs through the Trainer)")

    @contextlib.contextmanager
    def context(self, device: torch.device):
        """The per-call context: thread count, cached weight norm, inference mode and, for bf16, CPU autocast."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.policy.applied(device))
            stack.enter_context(torch.inference_mode())
            stack.enter_context(parametrize.cached())
            if self.precision == "bf16":
                stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
            yield


def prepare(model: nn.Module, options: InferenceOptions) -> nn.Module:
    """The module that computes for ``model`` under ``options``: ``model`` itself, or an int8 copy.

    ``model`` keeps its float weights (exports and the weights hash use them); an int8 copy shares nothing with it.
    ``compile`` compiles the computing module's ``encoder`` and ``decoder`` in place (``nn.Module.compile``, which
    leaves the state dict's keys alone).
    """
    runner = model
    if options.precision == "int8":
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            # torch.ao's eager quantisation is deprecated in favour of torchao but works through torch 2.14;
            # taae pins torch < 2.15, so the warnings only repeat what this docstring says.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*deprecated.*")
            runner = quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    if options.compile:
        for name in ("encoder", "decoder"):
            part = getattr(runner, name, None)
            if isinstance(part, nn.Module):
                part.compile(dynamic=True)
    return runner.eval()


def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that exists here; one-line ``ValueError`` otherwise."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:  # torch's message lists every device type it knows, over lines
        raise ValueError(f"device {str(device)!r} is not a device torch knows; use cpu, cuda, cuda:N or mps") \
            from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use device='cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} requested but MPS is not available; use device='cpu'")
    return device
