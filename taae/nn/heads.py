"""Decoder output heads: (B, C, N) features at the patch rate → (B, P, N) patches of waveform.

Shape legend: B batch, C channels, N frames at the patch rate, P patch size (samples per frame), W window (2P),
R STFT frames per patch, F frequency bins (n_fft / 2 + 1), M = N·R STFT frames.

The paper's head (arXiv 2411.19842 §3) is a conv C → P: each 20 ms patch is a linear map of one feature vector
and patches abut without overlap. It stays TAAE's default (``TAAEConfig.head = "patch"``, built in
``taae.models.taae``). The two heads here keep the patch-rate decoder and change only how samples are made:

- :class:`OverlapAddHead`: each frame emits 2P samples, windowed by a periodic Hann and overlap-added at hop P,
  so neighbouring frames cross-fade instead of meeting at a seam.
- :class:`ISTFTHead`: each frame emits log-magnitude and phase of R STFT frames, inverted with ``torch.istft``
  (in real arithmetic when exported to ONNX; Vocos, arXiv 2306.00814 §3; gemelo-ai/vocos ``vocos/heads.py``
  ISTFTHead). Silence is a log-magnitude far below zero, which a sample-domain head can only reach by cancelling its
  own outputs.

Both return the (B, P, N) patch layout of the paper's head, so ``TAAE.decode_codes`` unpatches all three alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = ["ISTFTHead", "OverlapAddHead"]


class OverlapAddHead(nn.Module):
    """Windowed frames of 2P samples at hop P, overlap-added.

    Frame n covers samples [nP − P/2, nP + 3P/2): centred on its patch, half a patch into each neighbour.
    ::

        patch      |   0   |   1   |   2   |
        frame 0  [~~~~~~~~~~~]
        frame 1          [~~~~~~~~~~~]
        frame 2                  [~~~~~~~~~~~]

    The window is a Hann shifted by half a sample, w[k] = sin²(π(k + ½)/W): like the periodic Hann it sums to exactly
    1 at 50% overlap (w[k] + w[k + P] = sin² + cos²), and unlike it no frame sample is multiplied by zero (the
    periodic Hann's w[0] = 0 would leave one of the 2P outputs without a gradient). At the two ends only one frame
    covers a sample, so the sum is divided out (the envelope, ≈ 0.5 there, 1 elsewhere), as ``torch.istft`` does.

    Args:
        in_channels: C of the decoder's last stage.
        patch_size: P, the hop; frames are 2P long (P must be even).
        kernel_size: of the conv that makes the frames (the paper's head uses 7).
    """

    def __init__(self, in_channels: int, patch_size: int, kernel_size: int = 7):
        super().__init__()
        if patch_size % 2:
            raise ValueError(f"OverlapAddHead needs an even patch_size (frames start half a patch early), "
                             f"got {patch_size}")
        self.patch_size = patch_size
        self.proj = nn.Conv1d(in_channels, 2 * patch_size, kernel_size, padding=kernel_size // 2)
        k = torch.arange(2 * patch_size, dtype=torch.float64)
        window = torch.sin(math.pi * (k + 0.5) / (2 * patch_size)).pow(2).float()
        self.register_buffer("window", window, persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, N) → (B, P, N)
        return self.overlap_add(self.proj(x))

    def overlap_add(self, frames: Tensor) -> Tensor:
        """(B, W, N) frames → (B, P, N) patches: window, overlap-add at hop P, divide by the window sum, crop."""
        p, n = self.patch_size, frames.shape[-1]
        size = (1, (n + 1) * p)  # frames span [−P/2, (N + 1/2)·P)
        summed = F.fold(frames * self.window[:, None], size, kernel_size=(1, 2 * p), stride=(1, p))
        ones = self.window[None, :, None].expand(1, -1, n)
        envelope = F.fold(ones, size, kernel_size=(1, 2 * p), stride=(1, p))
        wav = (summed / envelope)[..., p // 2: p // 2 + n * p]  # (B, 1, 1, N·P)
        return rearrange(wav, "b 1 1 (n p) -> b p n", p=p)


class ISTFTHead(nn.Module):
    """Log-magnitude and phase of R STFT frames per patch, inverted by ``torch.istft`` (Vocos).

    The hop is P / R and the FFT size ``fft_factor`` hops (Vocos: 4, a Hann window at 75% overlap). The STFT is
    centred (frame m at sample m·hop), and the output is cut to exactly N·P samples.

    Args:
        in_channels: C of the decoder's last stage.
        patch_size: P; must be a multiple of ``frames_per_patch``.
        frames_per_patch: R (2 at P = 320: hop 160, 10 ms, with a 640-sample FFT, 40 ms, as Vocos at 24 kHz).
        fft_factor: n_fft / hop.
        kernel_size: of the conv that makes the spectra.
        max_log_magnitude: log-magnitudes are clipped here (Vocos clips the magnitude at 1e2) so that one large
            output cannot overflow ``exp``.
    """

    def __init__(self, in_channels: int, patch_size: int, frames_per_patch: int = 2, fft_factor: int = 4,
                 kernel_size: int = 3, max_log_magnitude: float = math.log(1e2)):
        super().__init__()
        if frames_per_patch < 1 or patch_size % frames_per_patch:
            raise ValueError(f"ISTFTHead: patch_size {patch_size} is not a multiple of frames_per_patch "
                             f"{frames_per_patch}")
        if fft_factor < 2:
            raise ValueError(f"ISTFTHead: fft_factor must be >= 2 (overlapping frames), got {fft_factor}")
        if fft_factor * (patch_size // frames_per_patch) % 2:
            n_fft = fft_factor * (patch_size // frames_per_patch)
            raise ValueError(f"ISTFTHead: n_fft = fft_factor · hop = {n_fft} must be even (its last bin is then the "
                             "Nyquist bin)")
        self.patch_size, self.frames_per_patch = patch_size, frames_per_patch
        self.hop = patch_size // frames_per_patch
        self.n_fft = fft_factor * self.hop
        self.bins = self.n_fft // 2 + 1
        self.max_log_magnitude = max_log_magnitude
        self.proj = nn.Conv1d(in_channels, 2 * frames_per_patch * self.bins, kernel_size, padding=kernel_size // 2)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        k = torch.arange(self.bins, dtype=torch.float64)[:, None]
        t = torch.arange(self.n_fft, dtype=torch.float64)[None, :]
        weight = torch.full((self.bins, 1), 2.0, dtype=torch.float64)
        weight[0] = weight[-1] = 1.0  # n_fft is even: the last bin is Nyquist
        angle = 2 * math.pi * k * t / self.n_fft
        self.register_buffer("cos_basis", (weight * torch.cos(angle) / self.n_fft).float(), persistent=False)  # (F, W)
        self.register_buffer("sin_basis", (weight * torch.sin(angle) / self.n_fft).float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, N) → (B, P, N)
        return self.synthesize(self.proj(x))

    def synthesize(self, params: Tensor) -> Tensor:
        """(B, 2·R·F, N) log-magnitudes and phases → (B, P, N) patches."""
        n = params.shape[-1]
        spec = rearrange(params, "b (two r f) n -> two b f (n r)", two=2, r=self.frames_per_patch)  # (2, B, F, M)
        magnitude = spec[0].float().clamp(max=self.max_log_magnitude).exp()
        phase = spec[1].float()
        if torch.compiler.is_exporting():  # torch.export (ONNX) has no complex tensors: the real-valued inverse
            wav = self.istft_real(magnitude, phase, n * self.patch_size)
        else:
            wav = torch.istft(torch.polar(magnitude, phase), self.n_fft, self.hop, window=self.window, center=True,
                              length=n * self.patch_size)  # (B, N·P)
        return rearrange(wav, "b (n p) -> b p n", p=self.patch_size).to(params.dtype)

    def istft_real(self, magnitude: Tensor, phase: Tensor, length: int) -> Tensor:
        """``torch.istft`` of ``polar(magnitude, phase)`` (B, F, M) in real arithmetic → (B, length), for exporters.

        The one-sided inverse DFT is two matmuls with cosine and sine bases (irfft's weights: 1 for DC and Nyquist,
        2 between; the sine rows of those two bins are zero, so their imaginary parts drop out as irfft drops them),
        then the window, overlap-add at the hop, division by the summed squared window, and the centre padding cut.
        Equal to ``torch.istft`` within float32 rounding (tested); 2.4× its cost with gradients on a CPU, so training
        keeps ``torch.istft``.
        """
        frames = (rearrange(magnitude * torch.cos(phase), "b f m -> b m f") @ self.cos_basis
                  - rearrange(magnitude * torch.sin(phase), "b f m -> b m f") @ self.sin_basis) * self.window
        m = frames.shape[1]
        size = (1, (m - 1) * self.hop + self.n_fft)
        summed = F.fold(rearrange(frames, "b m w -> b w m"), size, kernel_size=(1, self.n_fft), stride=(1, self.hop))
        squares = self.window.pow(2)[None, :, None].expand(1, -1, m)
        envelope = F.fold(squares, size, kernel_size=(1, self.n_fft), stride=(1, self.hop))
        start = self.n_fft // 2
        return (summed / envelope)[:, 0, 0, start: start + length]

    def analyze(self, wav: Tensor, floor: float = 1e-7) -> Tensor:
        """(B, 1, N·P) → the (B, 2·R·F, N) parameters whose :meth:`synthesize` gives ``wav`` back: the head's own
        STFT, for tests and for initialising from a signal. Magnitudes below ``floor`` become ``floor``."""
        n = wav.shape[-1] // self.patch_size
        spec = torch.stft(wav[:, 0].float(), self.n_fft, self.hop, window=self.window, center=True,
                          return_complex=True)[..., : n * self.frames_per_patch]  # (B, F, M): frame M is dropped
        params = torch.stack([spec.abs().clamp_min(floor).log(), spec.angle()])  # (2, B, F, M)
        return rearrange(params, "two b f (n r) -> b (two r f) n", r=self.frames_per_patch)
