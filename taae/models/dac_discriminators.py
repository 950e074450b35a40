"""DAC's discriminators (§7): the multi-period discriminator (MPD, §7) and the multi-band,
multi-scale complex STFT discriminator (MRD, §7), following DAC's ``dac/model/discriminator.py``.

Shape legend: B batch, T samples, C channels, W frequency bins, L STFT frames (or folded rows for MPD), P period.

Both return one feature list per sub-discriminator (see ``taae.models.discriminator_base``) and are re-exported
from ``taae.models.discriminators``, the class paths the configs use; DAC's full discriminator is
``CombinedDiscriminator([MultiPeriodDiscriminator(), MultiBandDiscriminator()])``.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from taae.models.discriminator_base import _Discriminator, _wn_conv2d

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
    """DAC's MPD (§7): one ``PeriodDiscriminator`` per period, 8.22 M parameters each at DAC widths.

    Args:
        periods: fold periods (DAC / HiFi-GAN: 2, 3, 5, 7, 11).
        channels: conv widths (DAC: 32, 128, 512, 1024, 1024); smaller for tiny configs.
        kernel_size, stride, post_kernel_size, negative_slope: DAC's 5, 3, 3 and LeakyReLU 0.1.
        normalize_input, input_peak: DAC's DC removal + peak normalisation to 0.8 (§7).
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
    band outputs concatenated along frequency into one shared post conv (§7)."""

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
    """DAC's multi-band multi-scale STFT discriminator (§7), 0.47 M parameters per window.

    Args:
        window_lengths: STFT windows (DAC: 2048, 1024, 512), hop = window * hop_factor (DAC: 1/4).
        bands: frequency bands as fractions of the W = window/2 + 1 bins (DAC's five bands).
        channels: conv width of every band stack (DAC: 32).
        kernel_size, freq_strides, last_kernel_size, negative_slope: DAC's (3, 9) convs with frequency strides
            1, 2, 2, 2, then a (3, 3) conv, LeakyReLU 0.1.
        normalize_input, input_peak: DAC's DC removal + peak normalisation to 0.8 (§7).
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
