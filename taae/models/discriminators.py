"""Discriminators: TAAE's complex multi-resolution STFT discriminator and DAC's multi-period / multi-band ones.

Shape legend: B batch, T samples, C channels, W frequency bins, L STFT frames (or folded rows for MPD), P period.

Every discriminator's ``forward(wav (B, 1, T))`` returns ``list[list[Tensor]]``: one list per sub-discriminator,
holding its feature maps with the logit map last. Discriminators therefore compose by list concatenation
(``CombinedDiscriminator``), and ``taae.losses.adversarial`` reads any combination.

- ``ComplexSTFTDiscriminator``: EnCodec's MS-STFT discriminator as TAAE's code uses it (spec/taae.md §9.2), with
  inharmonic FFT sizes and magnitude compression of the complex STFT.
- ``MultiPeriodDiscriminator`` and ``MultiBandDiscriminator``: DAC's MPD and MRD (spec/dac.md §5.1, §5.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm
from torch.utils.checkpoint import checkpoint

GOLDEN_RATIO = (1 + math.sqrt(5)) / 2

# helper functions


def golden_ratio_fft_sizes(largest: int = 2048, count: int = 5) -> tuple[int, ...]:
    """round(largest / φ^k) for k = 0 … count-1: unevenly spaced, inharmonic FFT sizes (spec/taae.md §9.2)."""
    return tuple(round(largest / GOLDEN_RATIO**k) for k in range(count))


def normalize_audio(wav: Tensor, peak: float = 0.8, eps: float = 1e-9) -> Tensor:
    """DAC's discriminator input preprocessing (spec/dac.md §5): remove DC, then peak-normalise each item."""
    wav = wav - wav.mean(dim=-1, keepdim=True)
    return peak * wav / (wav.abs().amax(dim=-1, keepdim=True) + eps)


def _wn_conv2d(*args, **kwargs) -> nn.Conv2d:
    return weight_norm(nn.Conv2d(*args, **kwargs))


def _check_wav(wav: Tensor, min_length: int = 1) -> None:
    if wav.dim() != 3 or wav.shape[1] != 1:
        raise ValueError(f"expected a mono waveform (B, 1, T), got {tuple(wav.shape)}")
    if wav.shape[-1] < min_length:
        raise ValueError(f"waveform of {wav.shape[-1]} samples is shorter than the {min_length} this one needs")


class _Discriminator(nn.Module):
    """Shared front: optional DAC input normalisation, then one feature list per sub-discriminator."""

    def __init__(self, normalize_input: bool, input_peak: float):
        super().__init__()
        self.normalize_input, self.input_peak = normalize_input, input_peak
        self.discriminators = nn.ModuleList()

    def forward(self, wav: Tensor) -> list[list[Tensor]]:
        _check_wav(wav)
        if self.normalize_input:
            wav = normalize_audio(wav, self.input_peak)
        return [d(wav) for d in self.discriminators]


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
    """TAAE's multi-resolution complex STFT discriminator (spec/taae.md §9.2); EnCodec's layout per resolution.

    The paper states inharmonic FFT sizes near golden-ratio ratios, magnitude scaling and "more parameters", but
    not the sizes, hops, exponent or width (NF). Our defaults, labelled as such:

    Args:
        fft_sizes: round(2048 / φ^k), k = 0…4 (ours); no size divides another, unlike powers of two.
        hop_factor: hop = round(fft_size * hop_factor); 1/4 (ours, the spec's suggestion).
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


# DAC: multi-period discriminator


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN / DAC MPD for one period: the waveform folded to (B, 1, T/P, P), convs along time only."""

    def __init__(
        self,
        period: int,
        channels: Sequence[int] = (32, 128, 512, 1024, 1024),
        kernel_size: int = 5,
        stride: int = 3,
        post_kernel_size: int = 3,
        negative_slope: float = 0.1,
    ):
        super().__init__()
        self.period = period
        convs, in_ch = [], 1
        for i, out_ch in enumerate(channels):
            s = stride if i < len(channels) - 1 else 1  # the last conv keeps the length (DAC)
            convs.append(_wn_conv2d(in_ch, out_ch, (kernel_size, 1), (s, 1), padding=((kernel_size - 1) // 2, 0)))
            in_ch = out_ch
        self.convs = nn.ModuleList(convs)
        self.conv_post = _wn_conv2d(in_ch, 1, (post_kernel_size, 1), padding=((post_kernel_size - 1) // 2, 0))
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, wav: Tensor) -> list[Tensor]:
        # DAC pads by period - T mod P, i.e. a whole extra period when T is already a multiple; kept for parity
        wav = F.pad(wav, (0, self.period - wav.shape[-1] % self.period), mode="reflect")
        x = rearrange(wav, "b c (l p) -> b c l p", p=self.period)
        features = []
        for conv in self.convs:
            x = self.act(conv(x))
            features.append(x)
        features.append(self.conv_post(x))
        return features


class MultiPeriodDiscriminator(_Discriminator):
    """DAC's MPD (spec/dac.md §5.1): one ``PeriodDiscriminator`` per period, 8.22 M parameters each at DAC widths.

    Args:
        periods: fold periods (DAC / HiFi-GAN: 2, 3, 5, 7, 11).
        channels: conv widths (DAC: 32, 128, 512, 1024, 1024); smaller for tiny configs.
        kernel_size, stride, post_kernel_size, negative_slope: DAC's 5, 3, 3 and LeakyReLU 0.1.
        normalize_input, input_peak: DAC's DC removal + peak normalisation to 0.8 (§5).
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channels: Sequence[int] = (32, 128, 512, 1024, 1024),
        kernel_size: int = 5,
        stride: int = 3,
        post_kernel_size: int = 3,
        negative_slope: float = 0.1,
        normalize_input: bool = True,
        input_peak: float = 0.8,
    ):
        super().__init__(normalize_input, input_peak)
        if not periods or not channels:
            raise ValueError(f"periods {tuple(periods)} and channels {tuple(channels)} must not be empty")
        for p in periods:
            self.discriminators.append(
                PeriodDiscriminator(p, channels, kernel_size, stride, post_kernel_size, negative_slope)
            )


# DAC: multi-band, multi-scale complex STFT discriminator ("MRD")


class BandDiscriminator(nn.Module):
    """DAC's MRD for one window length: the complex STFT split into frequency bands, one conv stack per band,
    band outputs concatenated along frequency into one shared post conv (spec/dac.md §5.2)."""

    def __init__(
        self,
        window_length: int,
        hop_factor: float = 0.25,
        bands: Sequence[tuple[float, float]] = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)),
        channels: int = 32,
        kernel_size: tuple[int, int] = (3, 9),
        freq_strides: Sequence[int] = (1, 2, 2, 2),
        last_kernel_size: tuple[int, int] = (3, 3),
        negative_slope: float = 0.1,
    ):
        super().__init__()
        self.window_length, self.hop_length = window_length, int(window_length * hop_factor)
        n_bins = window_length // 2 + 1
        self.bands = [(int(lo * n_bins), int(hi * n_bins)) for lo, hi in bands]
        self.register_buffer("window", torch.hann_window(window_length, periodic=True), persistent=False)
        kt, kf = kernel_size
        last_pad = ((last_kernel_size[0] - 1) // 2, (last_kernel_size[1] - 1) // 2)

        def stack() -> nn.ModuleList:
            convs, in_ch = [], 2
            for s in freq_strides:
                convs.append(_wn_conv2d(in_ch, channels, kernel_size, (1, s), padding=((kt - 1) // 2, (kf - 1) // 2)))
                in_ch = channels
            convs.append(_wn_conv2d(channels, channels, last_kernel_size, padding=last_pad))
            return nn.ModuleList(convs)

        self.band_convs = nn.ModuleList([stack() for _ in self.bands])
        self.conv_post = _wn_conv2d(channels, 1, last_kernel_size, padding=last_pad)
        self.act = nn.LeakyReLU(negative_slope)

    def spectrogram(self, wav: Tensor) -> Tensor:
        """audiotools' ``match_stride`` STFT: ceil(T / hop) frames, as (B, 2, L, W) real/imag channels."""
        T, hop, win = wav.shape[-1], self.hop_length, self.window_length
        pad, right = (win - hop) // 2, math.ceil(T / hop) * hop - T
        if pad + right >= T:
            raise ValueError(f"waveform of {T} samples is too short for the reflect padding of window {win}")
        with torch.autocast(device_type=wav.device.type, enabled=False):
            x = F.pad(wav.float(), (pad, pad + right), mode="reflect")
            z = torch.stft(
                rearrange(x, "b 1 t -> b t"), win, hop, window=self.window.float(), center=True, return_complex=True
            )
            z = z[..., 2:-2]  # the frames added by the two paddings
            return rearrange(torch.view_as_real(z), "b w l c -> b c l w")

    def forward(self, wav: Tensor) -> list[Tensor]:
        x = self.spectrogram(wav).to(next(self.parameters()).dtype)
        features, outs = [], []
        for (lo, hi), stack in zip(self.bands, self.band_convs):
            band = x[..., lo:hi]
            for conv in stack:
                band = self.act(conv(band))
                features.append(band)
            outs.append(band)
        features.append(self.conv_post(torch.cat(outs, dim=-1)))
        return features


class MultiBandDiscriminator(_Discriminator):
    """DAC's multi-band multi-scale STFT discriminator (spec/dac.md §5.2), 0.47 M parameters per window.

    Args:
        window_lengths: STFT windows (DAC: 2048, 1024, 512), hop = window * hop_factor (DAC: 1/4).
        bands: frequency bands as fractions of the W = window/2 + 1 bins (DAC's five bands).
        channels: conv width of every band stack (DAC: 32).
        kernel_size, freq_strides, last_kernel_size, negative_slope: DAC's (3, 9) convs with frequency strides
            1, 2, 2, 2, then a (3, 3) conv, LeakyReLU 0.1.
        normalize_input, input_peak: DAC's DC removal + peak normalisation to 0.8 (§5).
    """

    def __init__(
        self,
        window_lengths: Sequence[int] = (2048, 1024, 512),
        bands: Sequence[tuple[float, float]] = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)),
        channels: int = 32,
        hop_factor: float = 0.25,
        kernel_size: tuple[int, int] = (3, 9),
        freq_strides: Sequence[int] = (1, 2, 2, 2),
        last_kernel_size: tuple[int, int] = (3, 3),
        negative_slope: float = 0.1,
        normalize_input: bool = True,
        input_peak: float = 0.8,
    ):
        super().__init__(normalize_input, input_peak)
        if not window_lengths:
            raise ValueError("window_lengths must not be empty")
        for lo, hi in bands:
            if not 0.0 <= lo < hi <= 1.0:
                raise ValueError(f"band {(lo, hi)} must satisfy 0 <= low < high <= 1")
        self.window_lengths = tuple(int(w) for w in window_lengths)
        for w in self.window_lengths:
            self.discriminators.append(
                BandDiscriminator(
                    w, hop_factor, bands, channels, tuple(kernel_size), freq_strides, tuple(last_kernel_size),
                    negative_slope,
                )
            )



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
