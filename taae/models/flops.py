"""Analytic FLOP counts of the codec models, for scaling studies and MFU.

Shape legend: B batch, T samples, P patch size, N frames at a stage's rate, C width, D latent dim, S latent
frames, K codebooks, E codebook dim, W keys visible to a query (window).

Convention (the one ``torch.utils.flop_counter.FlopCounterMode`` follows, and nanoGPT / PaLM appendix B use for
MFU): 2 FLOPs per multiply-add of every matmul and convolution; element-wise work (activations, norms, softmax,
Snake, weight norm, FSQ rounding) is not counted. Training is forward + backward, the backward costing twice the
forward (one product for the input gradient, one for the weight gradient; Kaplan et al. 2020, §2.1), so
``train = 3 · forward``, except for work that has no backward (the RVQ nearest-codeword search, an argmax) and
the input gradient of the first layer (the waveform needs none). Activation checkpointing recomputes a forward
but is not counted: these are model FLOPs, not hardware FLOPs (PaLM appendix B).

Windowed attention counts the (query, key) pairs actually inside the band, 4·C FLOPs per pair (Q·Kᵀ and A·V),
not N²: the model computes a windowed function, whatever backend runs it. ``num_samples=None`` gives the rate of
an infinitely long input per second of audio (every query sees the whole window); a finite ``num_samples``
gives the exact count for one item of that length, edges included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from taae.nn.heads import ISTFTHead, OverlapAddHead

BACKWARD_FACTOR = 2
"""Backward FLOPs per forward FLOP of a layer whose input and weight both need gradients (Kaplan et al. 2020)."""


@dataclass
class FlopCount:
    """FLOPs of one forward, split by what their backward costs."""

    forward: float = 0.0
    no_backward: float = 0.0
    """Forward FLOPs with no backward at all (nearest-codeword search)."""
    no_input_grad: float = 0.0
    """Forward FLOPs of layers whose input needs no gradient (the first layer): backward = 1 × forward."""

    def add(self, flops: float, backward: str = "full") -> None:
        self.forward += flops
        if backward == "none":
            self.no_backward += flops
        elif backward == "weight":
            self.no_input_grad += flops

    @property
    def train(self) -> float:
        """Forward + backward."""
        full = self.forward - self.no_backward - self.no_input_grad
        return self.forward + BACKWARD_FACTOR * full + (BACKWARD_FACTOR - 1) * self.no_input_grad


def conv1d(in_channels: int, out_channels: int, kernel_size: int, out_frames: float) -> float:
    """A Conv1d: every output frame is one (C_in·k) × C_out product."""
    return 2.0 * in_channels * out_channels * kernel_size * out_frames


def conv_transpose1d(in_channels: int, out_channels: int, kernel_size: int, in_frames: float) -> float:
    """A ConvTranspose1d: every input frame scatters one C_in × (C_out·k) product."""
    return 2.0 * in_channels * out_channels * kernel_size * in_frames


def linear(in_features: int, out_features: int, tokens: float) -> float:
    return 2.0 * in_features * out_features * tokens


def window_pairs(num_tokens: float, window: tuple[int, int], exact: bool) -> float:
    """(query, key) pairs with ``i - left <= j <= i + right`` among N tokens.

    ``exact=False`` treats N as a rate of an endless sequence: every query sees left + right + 1 keys.
    """
    left, right = window
    if not exact:
        return num_tokens * (left + right + 1)
    n = int(num_tokens)

    def side(width: int) -> int:  # Σ_i min(width, keys on that side of query i) = Σ_i min(width, i)
        w = min(width, n - 1) if n else 0
        return w * (w + 1) // 2 + w * (n - 1 - w) if n else 0

    return n + side(left) + side(right)


def transformer_layer(width: int, tokens: float, window: tuple[int, int], ffn_mult: int, exact: bool) -> float:
    """One ``TransformerBlock``: QKV (3C²), output (C²), SwiGLU in (2mC²) and out (mC²), windowed attention."""
    matmuls = linear(width, 3 * width, tokens) + linear(width, width, tokens)
    matmuls += linear(width, 2 * ffn_mult * width, tokens) + linear(ffn_mult * width, width, tokens)
    return matmuls + 4.0 * width * window_pairs(tokens, window, exact)


def _frames(num_samples: int | None, sample_rate: int, hop: int) -> tuple[float, bool]:
    """Frames at the rate of one hop: per second for ``None``, else of the input right-padded to whole hops."""
    if num_samples is None:
        return sample_rate / hop, False
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1 (or None for a per-second rate), got {num_samples}")
    return float(math.ceil(num_samples / hop)), True


def taae_flops(config, num_samples: int | None = None) -> FlopCount:
    """One forward of a ``TAAE`` (``TAAEConfig``); see the module docstring for the conventions."""
    c = config
    count = FlopCount()
    hop = c.hop_length
    frames, exact = _frames(num_samples, c.sample_rate, hop)
    rates = [frames * hop / c.patch_size]  # patches, then each stage's output rate
    for s in c.strides:
        rates.append(rates[-1] / s)
    ins = (c.stem_width, *c.widths[:-1])
    decoder_depths = c.decoder_depths or c.depths
    kernel = [1 if s == 1 else 2 * s for s in c.strides]  # DownsampleConv / UpsampleConv

    # identity_stride1 (the released layout): a stride-1 stage has no conv at all
    identity = [c.identity_stride1 and s == 1 for s in c.strides]
    count.add(conv1d(c.patch_size, c.stem_width, 7, rates[0]), backward="weight")
    for i, (w_in, w, depth) in enumerate(zip(ins, c.widths, c.depths)):
        if not identity[i]:
            count.add(conv1d(w_in, w, kernel[i], rates[i + 1]))
        count.add(depth * transformer_layer(w, rates[i + 1], c.window, c.ffn_mult, exact))
    count.add(conv1d(c.widths[-1], c.latent_dim, 3, rates[-1]))

    count.add(conv1d(c.latent_dim, c.widths[-1], 3, rates[-1]))
    for i, (w_out, w, depth) in reversed(list(enumerate(zip(ins, c.widths, decoder_depths)))):
        count.add(depth * transformer_layer(w, rates[i + 1], c.window, c.ffn_mult, exact))
        if identity[i]:
            continue
        if c.strides[i] == 1:
            count.add(conv1d(w, w_out, 1, rates[i + 1]))
        else:
            count.add(conv_transpose1d(w, w_out, kernel[i], rates[i + 1]))
    count.add(conv1d(c.stem_width, *_output_head(c), rates[0]))
    return count


def _output_head(c) -> tuple[int, int]:
    """(channels, kernel) of the decoder's output conv at the patch rate, read off the head ``c.head`` builds.

    The iSTFT head's inverse FFT and the overlap-add are not matmuls and are not counted (module docstring).
    """
    if c.head == "patch":
        return c.patch_size, 7
    head = {"overlap_add": OverlapAddHead, "istft": ISTFTHead}[c.head]
    with torch.device("meta"):
        proj = head(c.stem_width, c.patch_size).proj
    return proj.out_channels, proj.kernel_size[0]


def rvqgan_flops(config, num_samples: int | None = None, residual_kernel: int = 7,  # ResidualUnit (nn.conv)
                 num_residual_units: int = 3) -> FlopCount:
    """One training forward of an ``RVQGAN`` (``RVQGANConfig``): every codebook stage runs, as in training."""
    c = config
    count = FlopCount()
    frames, exact = _frames(num_samples, c.sample_rate, c.hop_length)
    # exact_length=False (DAC's rule): an odd transposed-conv stride gives one frame fewer (s·L − 1)
    short = 0 if c.exact_length or not exact else 1
    samples = frames * c.hop_length

    def residual_units(channels: int, length: float) -> float:  # dilated conv k7 + conv k1, three times
        unit = conv1d(channels, channels, residual_kernel, length) + conv1d(channels, channels, 1, length)
        return num_residual_units * unit

    dim, length = c.encoder_dim, samples
    count.add(conv1d(1, dim, 7, length), backward="weight")
    for s in c.encoder_strides:
        count.add(residual_units(dim, length))
        length /= s
        count.add(conv1d(dim, 2 * dim, 1 if s == 1 else 2 * s, length))
        dim *= 2
    count.add(conv1d(dim, c.latent_dim, 3, length))

    for _ in range(c.n_codebooks):  # in_proj, cosine search (an argmax: no backward), out_proj
        count.add(conv1d(c.latent_dim, c.codebook_dim, 1, frames) + conv1d(c.codebook_dim, c.latent_dim, 1, frames))
        count.add(linear(c.codebook_dim, c.codebook_size, frames), backward="none")

    dim, length = c.decoder_dim, frames
    count.add(conv1d(c.latent_dim, dim, 7, length))
    for s in c.decoder_strides:
        if s == 1:
            count.add(conv1d(dim, dim // 2, 1, length))
        else:
            count.add(conv_transpose1d(dim, dim // 2, 2 * s, length))
        dim //= 2
        length = length * s - short * (s % 2)
        count.add(residual_units(dim, length))
    count.add(conv1d(dim, 1, 7, length))
    return count


class ComputeAccounting:
    """Compute accounting for a codec model; the model implements ``flop_count``.

    Mixed into ``TAAE`` and ``RVQGAN`` so that scaling studies and MFU read the model's own numbers.
    """

    sample_rate: int

    def flop_count(self, num_samples: int | None = None) -> FlopCount:
        raise NotImplementedError

    def train_flops(self, num_samples: int) -> float:
        """Training FLOPs (forward + backward) of one item of ``num_samples`` samples."""
        return self.flop_count(num_samples).train

    def train_flops_per_second(self, num_samples: int | None = None) -> float:
        """Training FLOPs per second of audio, for endless input (None) or for items of ``num_samples``."""
        if num_samples is None:
            return self.flop_count(None).train
        return self.train_flops(num_samples) * self.sample_rate / num_samples
