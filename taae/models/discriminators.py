"""Discriminators: TAAE's complex multi-resolution STFT discriminator and DAC's multi-period / multi-band ones.

Shape legend: B batch, T samples, C channels, W frequency bins, L STFT frames.

Every discriminator's ``forward(wav (B, 1, T))`` returns ``list[list[Tensor]]``: one list per sub-discriminator,
holding its feature maps with the logit map last. Discriminators therefore compose by list concatenation
(``CombinedDiscriminator``), and ``taae.losses.adversarial`` reads any combination.

- ``ComplexSTFTDiscriminator``: EnCodec's MS-STFT discriminator as TAAE's code uses it (§6), with
  inharmonic FFT sizes and magnitude compression of the complex STFT.
- ``MultiPeriodDiscriminator`` and ``MultiBandDiscriminator``: DAC's MPD and MRD (§7), defined
  in ``taae.models.dac_discriminators`` and re-exported here, where the configs' class paths point.
- ``CombinedDiscriminator``: several of them side by side.

The shared front (input check, DAC's input normalisation) lives in ``taae.models.discriminator_base``.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from taae.models.dac_discriminators import BandDiscriminator as BandDiscriminator  # re-exported: config class paths
from taae.models.dac_discriminators import MultiBandDiscriminator as MultiBandDiscriminator
from taae.models.dac_discriminators import MultiPeriodDiscriminator as MultiPeriodDiscriminator
from taae.models.dac_discriminators import PeriodDiscriminator as PeriodDiscriminator
from taae.models.discriminator_base import _check_wav, _Discriminator, _wn_conv2d

GOLDEN_RATIO = (1 + math.sqrt(5)) / 2

# helper functions


def golden_ratio_fft_sizes(largest: int = 2048, count: int = 5) -> tuple[int, ...]:
    """round(largest / φ^k) for k = 0 … count-1: unevenly spaced, inharmonic FFT sizes (§6)."""
    return tuple(round(largest / GOLDEN_RATIO**k) for k in range(count))


# TAAE / EnCodec: complex STFT, one sub-discriminator per FFT size


class STFTDiscriminator(nn.Module):
    """One resolution of EnCodec's MS-STFT discriminator (``DiscriminatorSTFT``) with magnitude compression.

    The normalised complex STFT (Hann window = FFT size, ``center=False``) enters as real/imag channels laid out
    (B, 2, L, W); convs with kernel (time, freq) = (3, 9) stride along frequency and dilate along time.
    """

    def __init__(
        self,
        n_fft: int,
        hop_length: int,
        filters: int = 32,
        filters_scale: int = 1,
        max_filters: int = 1024,
        kernel_size: tuple[int, int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
        stride: tuple[int, int] = (1, 2),
        negative_slope: float = 0.2,
        magnitude_compression: float = 0.5,
        magnitude_eps: float = 1e-6,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.magnitude_compression, self.magnitude_eps = magnitude_compression, magnitude_eps
        self.gradient_checkpointing = gradient_checkpointing
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        kt, kf = kernel_size
        convs = [_wn_conv2d(2, filters, kernel_size, padding=((kt - 1) // 2, (kf - 1) // 2))]
        in_ch = min(filters_scale * filters, max_filters)
        for i, d in enumerate(dilations):
            out_ch = min(filters_scale ** (i + 1) * filters, max_filters)
            pad = ((kt - 1) * d // 2, (kf - 1) // 2)
            convs.append(_wn_conv2d(in_ch, out_ch, kernel_size, stride=stride, dilation=(d, 1), padding=pad))
            in_ch = out_ch
        out_ch = min(filters_scale ** (len(dilations) + 1) * filters, max_filters)
        square, square_pad = (kt, kt), ((kt - 1) // 2, (kt - 1) // 2)  # EnCodec's last two convs are (3, 3)
        convs.append(_wn_conv2d(in_ch, out_ch, square, padding=square_pad))
        self.convs = nn.ModuleList(convs)
        self.conv_post = _wn_conv2d(out_ch, 1, square, padding=square_pad)
        self.act = nn.LeakyReLU(negative_slope)

    def spectrogram(self, wav: Tensor) -> Tensor:
        """(B, 1, T) -> compressed complex STFT as (B, 2, L, W) real/imag channels, in fp32."""
        window = self.window.float()
        with torch.autocast(device_type=wav.device.type, enabled=False):
            z = torch.stft(
                rearrange(wav.float(), "b 1 t -> b t"),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=window,
                center=False,
                return_complex=True,
            )  # (B, W, L)
            z = z / window.square().sum().sqrt()  # torchaudio's normalized=True ("frame_length")
            if self.magnitude_compression:
                # keeps the phase, maps |z| to about |z|^(1 - c); stable-audio-tools' spec_scale_pow = -c
                z = z * (z.abs() + self.magnitude_eps).pow(-self.magnitude_compression)
            return rearrange(torch.view_as_real(z), "b w l c -> b c l w")

    def forward(self, wav: Tensor) -> list[Tensor]:
        x = self.spectrogram(wav).to(next(self.parameters()).dtype)
        features = []
        for conv in self.convs:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = self.act(checkpoint(conv, x, use_reentrant=False))
            else:
                x = self.act(conv(x))
            features.append(x)
        features.append(self.conv_post(x))
        return features


class ComplexSTFTDiscriminator(_Discriminator):
    """TAAE's multi-resolution complex STFT discriminator (§6); EnCodec's layout per resolution.

    The paper states inharmonic FFT sizes near golden-ratio ratios, magnitude scaling and "more parameters", but
    not the sizes, hops, exponent or width (NF). Our defaults, labelled as such:

    Args:
        fft_sizes: round(2048 / φ^k), k = 0…4 (ours); no size divides another, unlike powers of two.
        hop_factor: hop = round(fft_size * hop_factor); 1/4 (ours, docs/decisions.md's suggestion).
        filters, filters_scale, max_filters: width 32 (ours: TAAE's width is NF, 32 is EnCodec's), growth per
            layer 1 and cap 1024 (EnCodec / stable-audio-tools).
        kernel_size, dilations, stride: (3, 9), time dilations (1, 2, 4), stride 2 along frequency (EnCodec;
            stable-audio-tools' copy defaults to stride (1, 1)).
        negative_slope: LeakyReLU slope (EnCodec: 0.2).
        magnitude_compression: c in z · (|z| + eps)^(−c), so |z| becomes about |z|^(1 − c) with the phase kept;
            0.5 (square-root magnitude) is ours. Equals −``spec_scale_pow`` of stable-audio-tools.
        magnitude_eps: eps of that compression (stable-audio-tools: 1e-6).
        normalize_input: DAC's DC removal + peak normalisation; off by default because TAAE's code feeds the raw
            waveform to this discriminator.
        input_peak: peak level of that normalisation (DAC: 0.8).
        gradient_checkpointing: recompute each conv in backward (TAAE's code checkpoints every layer).
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = golden_ratio_fft_sizes(2048, 5),
        hop_factor: float = 0.25,
        filters: int = 32,
        filters_scale: int = 1,
        max_filters: int = 1024,
        kernel_size: tuple[int, int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
        stride: tuple[int, int] = (1, 2),
        negative_slope: float = 0.2,
        magnitude_compression: float = 0.5,
        magnitude_eps: float = 1e-6,
        normalize_input: bool = False,
        input_peak: float = 0.8,
        gradient_checkpointing: bool = False,
    ):
        super().__init__(normalize_input, input_peak)
        if not fft_sizes:
            raise ValueError("fft_sizes must not be empty")
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        for n in self.fft_sizes:
            hop = max(1, round(n * hop_factor))
            self.discriminators.append(
                STFTDiscriminator(
                    n, hop, filters, filters_scale, max_filters, tuple(kernel_size), dilations, tuple(stride),
                    negative_slope, magnitude_compression, magnitude_eps, gradient_checkpointing,
                )
            )

    def forward(self, wav: Tensor) -> list[list[Tensor]]:
        # center=False frames need at least one full window
        _check_wav(wav, min_length=max(self.fft_sizes))
        return super().forward(wav)


# composition


class CombinedDiscriminator(nn.Module):
    """Several discriminators side by side; their sub-discriminator lists are concatenated in order.

    DAC's full discriminator is ``CombinedDiscriminator([MultiPeriodDiscriminator(), MultiBandDiscriminator()])``
    (42.52 M parameters). From a LightningCLI config, ``discriminators`` is a list of ``class_path``/``init_args``.
    """

    def __init__(self, discriminators: Sequence[nn.Module]):
        super().__init__()
        if not discriminators:
            raise ValueError("CombinedDiscriminator needs at least one discriminator")
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, wav: Tensor) -> list[list[Tensor]]:
        return [features for d in self.discriminators for features in d(wav)]
