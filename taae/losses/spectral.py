"""Spectral reconstruction losses: DAC's multi-scale mel L1, an auraloss-style multi-resolution STFT loss, and L1.

Shape legend: B batch, C channels, T samples, W frequency bins, L STFT frames, M mel bands.

- ``MultiScaleMelLoss`` follows DAC's 16 kHz configuration (§7): seven periodic-Hann STFTs with
  hop = window / 4, centred and reflect-padded, a Slaney mel filterbank (librosa's default) applied to the
  *magnitude*, then L1 between log10(clamp(mel, eps) ** pow), summed over the scales.
- ``MultiResolutionSTFTLoss`` is the auraloss loss that TAAE's training code offers (§6): spectral
  convergence plus L1 of log magnitudes, averaged over resolutions. Spectral convergence is normalised by the
  *target*, as in the auraloss paper; the official wrapper swaps its arguments (§9 item 9).
- ``WaveformL1Loss`` is TAAE's "traditional L1 reconstruction loss" (§6). Its decaying weight is a
  schedule of the training module, not of the loss.

Every loss runs in fp32 with autocast disabled: log-magnitudes of bf16 spectra are too coarse for a loss that is
weighted 15× (DAC) and compared across runs.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchaudio
from einops import rearrange
from torch import Tensor, nn

# helper functions


def _as_batch_of_signals(wav: Tensor) -> Tensor:
    """(B, T) or (B, C, T) -> (B*C, T): channels are scored as separate signals, as DAC's AudioSignal does."""
    if wav.dim() == 2:
        return wav
    if wav.dim() == 3:
        return rearrange(wav, "b c t -> (b c) t")
    raise ValueError(f"expected a waveform of shape (B, T) or (B, C, T), got {tuple(wav.shape)}")


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def _stft(wav: Tensor, n_fft: int, hop_length: int, window: Tensor, center: bool = True) -> Tensor:
    """Complex STFT (B, W, L) of (B, T) in fp32; centred frames use reflect padding (librosa / audiotools)."""
    if center and wav.shape[-1] <= n_fft // 2:
        raise ValueError(f"signal of {wav.shape[-1]} samples is too short for a centred STFT with n_fft={n_fft}")
    return torch.stft(
        wav.float(),
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=window.shape[-1],
        window=window.float(),
        center=center,
        pad_mode="reflect",
        return_complex=True,
    )


def slaney_mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> Tensor:
    """librosa's default mel filterbank (Slaney scale and area normalisation), shape (W, M) with W = n_fft/2 + 1.

    Raises ``ValueError`` if a filter is empty (all zeros): too many mels for too few FFT bins.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}, sr={sample_rate}")
    fb = torchaudio.functional.melscale_fbanks(
        n_freqs=n_fft // 2 + 1,
        f_min=fmin,
        f_max=fmax,
        n_mels=n_mels,
        sample_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    empty = (fb.amax(dim=0) <= 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"mel filterbank with n_fft={n_fft}, n_mels={n_mels} at {sample_rate} Hz has empty filters {empty}: "
            "use fewer mels or a longer window"
        )
    return fb


def mel_spectrogram(
    wav: Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int | None = None,
    n_mels: int = 80,
    fmin: float = 0.0,
    fmax: float | None = None,
    clamp_eps: float = 1e-5,
    log: bool = True,
) -> Tensor:
    """A log10 mel magnitude spectrogram (B, M, L), computed like ``MultiScaleMelLoss`` (e.g. for plots).

    Args:
        wav: (B, T) or (B, 1, T) waveform.
        sample_rate: sample rate of ``wav`` in Hz.
        n_fft: window and FFT length; ``hop_length`` defaults to n_fft / 4 (DAC).
        n_mels, fmin, fmax: Slaney mel filterbank settings (fmax None = Nyquist).
        clamp_eps: floor before the log.
        log: return log10(clamp(mel, clamp_eps)) if True, the linear mel magnitude otherwise.

    Returns:
        (B, M, L) fp32 tensor.
    """
    hop_length = n_fft // 4 if hop_length is None else hop_length
    wav = _as_batch_of_signals(wav)
    window = torch.hann_window(n_fft, periodic=True, device=wav.device)
    fb = slaney_mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).to(wav.device)
    with torch.autocast(device_type=wav.device.type, enabled=False):
        mag = _stft(wav, n_fft, hop_length, window).abs()  # (B, W, L)
        mel = torch.einsum("bwl,wm->bml", mag, fb)
        return mel.clamp(min=clamp_eps).log10() if log else mel


# main classes


class MultiScaleMelLoss(nn.Module):
    """DAC's multi-scale mel-spectrogram L1 (§7), the main reconstruction loss (weight 15 in DAC).

    Args:
        sample_rate: audio sample rate in Hz.
        window_lengths: STFT window (= FFT) lengths; DAC's 16 kHz config, §7.
        n_mels: mel bands per window, paired with ``window_lengths``; DAC's 16 kHz config, §7.
        fmin, fmax: mel range in Hz (fmax None = Nyquist); §7.
        pow: exponent applied to the clamped mel magnitude before log10; DAC's configs use 1.0, §7.
        clamp_eps: floor of the mel magnitude before the log; §7.
        mag_weight: weight of L1 between linear mel magnitudes; 0 in DAC's configs, §7.
        log_weight: weight of L1 between log mels; §7.
        hop_factor: hop = window * hop_factor; §7.

    The filterbanks and windows are non-persistent buffers: they follow ``.to(device)`` and stay out of
    checkpoints. Keep the module in fp32 (``.to(bfloat16)`` would round the filterbanks).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
        n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
        fmin: float = 0.0,
        fmax: float | None = None,
        pow: float = 1.0,
        clamp_eps: float = 1e-5,
        mag_weight: float = 0.0,
        log_weight: float = 1.0,
        hop_factor: float = 0.25,
    ):
        super().__init__()
        if len(window_lengths) != len(n_mels) or not window_lengths:
            raise ValueError(f"window_lengths {tuple(window_lengths)} and n_mels {tuple(n_mels)} must pair up 1:1")
        self.sample_rate = sample_rate
        self.window_lengths = tuple(int(w) for w in window_lengths)
        self.hop_lengths = tuple(max(1, int(w * hop_factor)) for w in self.window_lengths)
        self.n_mels = tuple(int(m) for m in n_mels)
        self.pow, self.clamp_eps = pow, clamp_eps
        self.mag_weight, self.log_weight = mag_weight, log_weight
        for i, (win, mels) in enumerate(zip(self.window_lengths, self.n_mels)):
            self.register_buffer(f"window_{i}", torch.hann_window(win, periodic=True), persistent=False)
            fb = slaney_mel_filterbank(sample_rate, win, mels, fmin, fmax)
            self.register_buffer(f"mel_fb_{i}", fb, persistent=False)

    def log_mel(self, wav: Tensor, scale: int) -> tuple[Tensor, Tensor]:
        """Linear and log10 mel (B, M, L) of (B, T) at one scale, in fp32."""
        window, fb = getattr(self, f"window_{scale}"), getattr(self, f"mel_fb_{scale}").float()
        mag = _stft(wav, self.window_lengths[scale], self.hop_lengths[scale], window).abs()  # (B, W, L)
        mel = torch.einsum("bwl,wm->bml", mag, fb)
        return mel, mel.clamp(min=self.clamp_eps).pow(self.pow).log10()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Sum over scales of log_weight * L1(log mels) + mag_weight * L1(mels); a scalar fp32 tensor."""
        _check_pair(pred, target)
        pred, target = _as_batch_of_signals(pred), _as_batch_of_signals(target)
        loss = pred.new_zeros((), dtype=torch.float32)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            for scale in range(len(self.window_lengths)):
                mel_pred, log_pred = self.log_mel(pred, scale)
                mel_target, log_target = self.log_mel(target, scale)
                loss = loss + self.log_weight * (log_pred - log_target).abs().mean()
                if self.mag_weight:
                    loss = loss + self.mag_weight * (mel_pred - mel_target).abs().mean()
        return loss


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 over several STFT resolutions (auraloss; §6).

    Per resolution: ``sc_weight * ||Y| - |X||_F / ||Y|_F + log_mag_weight * L1(log|X|, log|Y|)
    + lin_mag_weight * L1(|X|, |Y|)`` with X the prediction and Y the target; the mean over resolutions is
    returned. Whether TAAE used this loss, and its settings, are not published (NF): the resolutions are ours
    (powers of two from 2048 to 128, hop = FFT / 4, window = FFT).

    Args:
        fft_sizes: FFT sizes, one per resolution (ours).
        hop_sizes: hops; None = fft / 4 (ours).
        win_lengths: Hann window lengths; None = fft size (ours).
        sc_weight, log_mag_weight, lin_mag_weight: term weights (auraloss defaults 1, 1, 0).
        eps: floor of the power spectrum before the square root, so that log|X| and its gradient stay finite
            (ours; auraloss uses 1e-8).
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128),
        hop_sizes: Sequence[int] | None = None,
        win_lengths: Sequence[int] | None = None,
        sc_weight: float = 1.0,
        log_mag_weight: float = 1.0,
        lin_mag_weight: float = 0.0,
        eps: float = 1e-7,
    ):
        super().__init__()
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.hop_sizes = tuple(hop_sizes) if hop_sizes is not None else tuple(n // 4 for n in self.fft_sizes)
        self.win_lengths = tuple(win_lengths) if win_lengths is not None else self.fft_sizes
        if not self.fft_sizes or not len(self.fft_sizes) == len(self.hop_sizes) == len(self.win_lengths):
            raise ValueError(
                f"fft_sizes {self.fft_sizes}, hop_sizes {self.hop_sizes} and win_lengths {self.win_lengths} "
                "must be non-empty and of equal length"
            )
        for n, w in zip(self.fft_sizes, self.win_lengths):
            if w > n:
                raise ValueError(f"win_length {w} is longer than its fft_size {n}")
        self.sc_weight, self.log_mag_weight, self.lin_mag_weight = sc_weight, log_mag_weight, lin_mag_weight
        self.eps = eps
        for i, w in enumerate(self.win_lengths):
            self.register_buffer(f"window_{i}", torch.hann_window(w, periodic=True), persistent=False)

    def magnitude(self, wav: Tensor, resolution: int) -> Tensor:
        """|STFT| (B, W, L) at one resolution, floored at sqrt(eps)."""
        window = getattr(self, f"window_{resolution}")
        spec = _stft(wav, self.fft_sizes[resolution], self.hop_sizes[resolution], window)
        return (spec.real.square() + spec.imag.square()).clamp(min=self.eps).sqrt()

    def spectral_convergence(self, pred_mag: Tensor, target_mag: Tensor) -> Tensor:
        """||Y| - |X||_F / ||Y|_F with Y the target (the denominator must not move with the prediction)."""
        return torch.linalg.vector_norm(target_mag - pred_mag) / torch.linalg.vector_norm(target_mag)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(pred, target)
        pred, target = _as_batch_of_signals(pred), _as_batch_of_signals(target)
        loss = pred.new_zeros((), dtype=torch.float32)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            for i in range(len(self.fft_sizes)):
                x, y = self.magnitude(pred, i), self.magnitude(target, i)
                loss = loss + self.sc_weight * self.spectral_convergence(x, y)
                loss = loss + self.log_mag_weight * (x.log() - y.log()).abs().mean()
                if self.lin_mag_weight:
                    loss = loss + self.lin_mag_weight * (x - y).abs().mean()
        return loss / len(self.fft_sizes)


class WaveformL1Loss(nn.Module):
    """Mean absolute sample error (§6; DAC logs it, §7).

    TAAE weights this term with a weight that decays during pre-training; that schedule (initial weight and
    decay, NF in the paper) belongs to the training module's loss weights, so this loss stays stateless.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(pred, target)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return (pred.float() - target.float()).abs().mean()


class CompressedComplexSTFTLoss(nn.Module):
    """A phase-sensitive waveform loss spread over frequency: L1 between power-law compressed complex STFTs.

    Per resolution, each STFT bin X = |X|·e^{jφ} becomes |X|^c·e^{jφ} (c = ``compression``) and the loss is the mean
    of |X_c − Y_c| over bins, averaged over resolutions. Like the waveform L1 it changes sign with the input, so a
    codec trained on it must follow the waveform; unlike it, the compression lifts the weak formant and fricative
    bands towards the strong low harmonics, where a sample-domain L1 spends almost all of its gradient (speech
    energy sits below ~500 Hz). Compressed complex spectra of this kind are a common speech-enhancement target
    (c = 0.3 in Wilson et al., IWAENC 2018, "Exploring tradeoffs in models for low-latency speech enhancement").

    Args:
        fft_sizes: FFT (= Hann window) lengths, one per resolution; hop = FFT / 4 (ours).
        compression: c, the exponent applied to the magnitude (ours: 0.3).
        eps: floor of the magnitude inside the power, so the gradient stays finite at silent bins.
    """

    def __init__(self, fft_sizes: Sequence[int] = (256, 512, 1024), compression: float = 0.3, eps: float = 1e-6):
        super().__init__()
        if not fft_sizes or any(int(n) < 2 for n in fft_sizes):
            raise ValueError(f"fft_sizes must be a non-empty list of sizes >= 2, got {fft_sizes}")
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.compression, self.eps = float(compression), float(eps)
        for i, n in enumerate(self.fft_sizes):
            self.register_buffer(f"window_{i}", torch.hann_window(n, periodic=True), persistent=False)

    def compressed(self, wav: Tensor, resolution: int) -> Tensor:
        """|X|^c·e^{jφ} (B, W, L) complex, in fp32."""
        n = self.fft_sizes[resolution]
        spec = _stft(wav, n, n // 4, getattr(self, f"window_{resolution}"))
        return spec * (spec.abs() + self.eps).pow(self.compression - 1.0)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(pred, target)
        pred, target = _as_batch_of_signals(pred), _as_batch_of_signals(target)
        loss = pred.new_zeros((), dtype=torch.float32)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            for i in range(len(self.fft_sizes)):
                loss = loss + (self.compressed(pred, i) - self.compressed(target, i)).abs().mean()
        return loss / len(self.fft_sizes)
