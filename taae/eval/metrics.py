"""Objective metrics for codec evaluation (§8): SI-SDR, mel and STFT distances, the noise floor in silences,
PESQ, STOI, DNSMOS, and real-time factor. Token entropy and bitrate live in ``taae.eval.token_stats``.

Shape legend: T samples.

SI-SDR, mel and STFT distances are torch code. PESQ (``pesq``), STOI (``pystoi``) and DNSMOS (``speechmos``)
are optional packages, imported lazily: a missing package turns its column off with a note, and a call that
fails on one file (PESQ finds no utterance in silence, a too-short buffer, ...) gives NaN plus an error
message rather than an exception, so one bad file never stops a whole evaluation.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

METRICS = ("si_sdr", "mel", "stft", "noise_floor", "pesq_wb", "pesq_nb", "stoi", "mos")
"""Every per-file metric key, in report column order."""

HIGHER_IS_BETTER = {"si_sdr": True, "mel": False, "stft": False, "noise_floor": True, "pesq_wb": True,
                    "pesq_nb": True, "stoi": True, "mos": True,
                    # model-based columns of taae.eval.speech_models, computed in the main process
                    "wer": False, "dwer": False, "sim": True}

PESQ_WB_RATE = 16000
PESQ_NB_RATE = 8000  # ITU-T P.862 narrow-band is defined on telephone-band 8 kHz audio
DNSMOS_RATE = 16000
SI_SDR_EPS = 1e-8
"""Energy floor (ours) so that a perfect reconstruction or a silent reference gives a finite SI-SDR."""


# ------------------------------------------------------------------------------------------------------------
# availability of optional packages


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def optional_metrics_status(mos: bool = True) -> tuple[list[str], list[str]]:
    """Which metrics can run here, and a note for each one that cannot.

    Returns:
        (available metric keys in ``METRICS`` order, notes naming each missing package and how to install it)
    """
    available, notes = ["si_sdr", "mel", "stft", "noise_floor"], []
    if _has("pesq"):
        available += ["pesq_wb", "pesq_nb"]
    else:
        notes.append("PESQ skipped: the `pesq` package is not installed (pip install 'taae[eval]')")
    if _has("pystoi"):
        available.append("stoi")
    else:
        notes.append("STOI skipped: the `pystoi` package is not installed (pip install 'taae[eval]')")
    if not mos:
        notes.append("MOS skipped: turned off (--no-mos)")
    elif all(_has(m) for m in ("speechmos", "onnxruntime", "librosa")):
        available.append("mos")
    else:
        notes.append("MOS skipped: DNSMOS needs `speechmos`, `onnxruntime` and `librosa` (pip install 'taae[mos]')")
    return [m for m in METRICS if m in available], notes


# ------------------------------------------------------------------------------------------------------------
# signal metrics


def si_sdr(estimate: Tensor, reference: Tensor, zero_mean: bool = True, eps: float = SI_SDR_EPS) -> Tensor:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), computed in float64.

    The reference is scaled by the least-squares projection ``alpha = <est, ref> / <ref, ref>``, so a gain change
    of the estimate does not change the score. Same formula as torchmetrics' ``scale_invariant_signal_distortion_
    ratio``, with ``eps`` added to numerator and denominator.

    Args:
        estimate: (..., T) decoded signal.
        reference: (..., T) clean signal, same shape.
        zero_mean: remove each signal's mean first (the usual definition).
        eps: energy floor; a perfect reconstruction scores ``10 log10(E_ref / eps)`` rather than inf.

    Returns:
        (...) float64 SI-SDR in dB.
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"si_sdr needs equal shapes, got estimate {tuple(estimate.shape)} "
                         f"and reference {tuple(reference.shape)}")
    est, ref = estimate.double(), reference.double()
    if zero_mean:
        est = est - est.mean(-1, keepdim=True)
        ref = ref - ref.mean(-1, keepdim=True)
    alpha = ((est * ref).sum(-1, keepdim=True) + eps) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = target - est
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


_SPECTRAL_LOSSES: dict[tuple[str, int], torch.nn.Module] = {}


def _spectral_loss(kind: str, sample_rate: int) -> torch.nn.Module:
    # One instance per process and rate: the mel filterbanks and windows are built once.
    key = (kind, sample_rate)
    if key not in _SPECTRAL_LOSSES:
        from taae.losses.spectral import MultiResolutionSTFTLoss, MultiScaleMelLoss

        _SPECTRAL_LOSSES[key] = (MultiScaleMelLoss(sample_rate=sample_rate) if kind == "mel"
                                 else MultiResolutionSTFTLoss())
    return _SPECTRAL_LOSSES[key]


@torch.no_grad()
def mel_distance(estimate: Tensor, reference: Tensor, sample_rate: int) -> float:
    """DAC's multi-scale mel distance (``taae.losses.spectral.MultiScaleMelLoss``, 7 scales, summed L1 terms).

    Args:
        estimate, reference: (1, T) or (T,) signals at ``sample_rate``.
    """
    loss = _spectral_loss("mel", sample_rate)
    return float(loss(estimate.float().reshape(1, 1, -1), reference.float().reshape(1, 1, -1)))


@torch.no_grad()
def stft_distance(estimate: Tensor, reference: Tensor, sample_rate: int) -> float:
    """Multi-resolution STFT distance (``taae.losses.spectral.MultiResolutionSTFTLoss``)."""
    loss = _spectral_loss("stft", sample_rate)
    return float(loss(estimate.float().reshape(1, 1, -1), reference.float().reshape(1, 1, -1)))


NOISE_FLOOR_FRAME_S = 0.02
"""Frame length of the noise-floor metric (ours: one TAAE patch at 16 kHz)."""
SILENCE_BELOW_PEAK_DB = 40.0
"""A reference frame is silent when its energy is this far below the reference's loudest frame (ours; the demo
prompts' pauses sit 55–65 dB below it, speech within ~30 dB)."""
SPEECH_WITHIN_PEAK_DB = 20.0
"""A reference frame is speech when its energy is within this of the reference's loudest frame (ours)."""


def noise_floor(estimate: Tensor, reference: Tensor, sample_rate: int) -> float:
    """How far below its own speech the coded signal stays where the reference is silent, in dB (higher: quieter).

    The reference is cut into 20 ms frames; its silent frames (≥ ``SILENCE_BELOW_PEAK_DB`` below its loudest
    frame) and speech frames (within ``SPEECH_WITHIN_PEAK_DB`` of it) select frames of the estimate, and the score
    is 10·log10(mean energy of the estimate's speech frames / mean energy of its silent frames). A codec that fills
    pauses with a broadband floor scores low; the reference scored against itself gives its own pause depth.

    Args:
        estimate, reference: (1, T) or (T,) signals of equal length at ``sample_rate``.

    Raises:
        ValueError: when the reference has no silent frame (compute_metrics turns it into NaN for that file).
    """
    frame = max(1, round(NOISE_FLOOR_FRAME_S * sample_rate))
    est, ref = estimate.reshape(-1).double(), reference.reshape(-1).double()
    if est.shape != ref.shape:
        raise ValueError(f"noise_floor needs equal lengths, got {est.numel()} and {ref.numel()} samples")
    count = ref.numel() // frame
    if count < 2:
        raise ValueError(f"noise_floor needs at least two {frame}-sample frames, got {ref.numel()} samples")
    ref_energy = ref[: count * frame].reshape(count, frame).pow(2).mean(1)  # (frames,)
    est_energy = est[: count * frame].reshape(count, frame).pow(2).mean(1)
    ref_db = 10 * torch.log10(ref_energy + 1e-20)
    peak = ref_db.max()
    silent = ref_db <= peak - SILENCE_BELOW_PEAK_DB
    speech = ref_db >= peak - SPEECH_WITHIN_PEAK_DB
    if not bool(silent.any()):
        raise ValueError(f"the reference has no frame {SILENCE_BELOW_PEAK_DB:g} dB below its loudest")
    return float(10 * torch.log10((est_energy[speech].mean() + 1e-20) / (est_energy[silent].mean() + 1e-20)))


def _resample(wav: Tensor, sample_rate: int, target: int) -> Tensor:
    if sample_rate == target:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav.double(), sample_rate, target)


def pesq_score(estimate: Tensor, reference: Tensor, sample_rate: int, mode: str = "wb") -> float:
    """PESQ (ITU-T P.862.2 wide-band at 16 kHz, or P.862 narrow-band at 8 kHz) via the ``pesq`` package.

    Both signals are resampled to the mode's rate first (16 kHz for ``wb``, 8 kHz for ``nb``).

    Raises:
        ValueError: for an unknown mode. The package's own errors (``pesq.PesqError``: no utterances found,
        buffer too short) propagate; ``compute_metrics`` turns them into NaN plus a counted failure.
    """
    if mode not in ("wb", "nb"):
        raise ValueError(f"PESQ mode must be 'wb' or 'nb', got {mode!r}")
    import pesq

    # pesq divides by each signal's peak; catching silence here gives a clear message instead of numpy warnings.
    for label, x in (("reference", reference), ("estimate", estimate)):
        if not bool(x.abs().max() > 0):
            raise ValueError(f"PESQ is undefined for a silent {label}")
    rate = PESQ_WB_RATE if mode == "wb" else PESQ_NB_RATE
    ref = _resample(reference.reshape(-1), sample_rate, rate).double().numpy()
    est = _resample(estimate.reshape(-1), sample_rate, rate).double().numpy()
    return float(pesq.pesq(rate, ref, est, mode))


def stoi_score(estimate: Tensor, reference: Tensor, sample_rate: int, extended: bool = False) -> float:
    """Short-time objective intelligibility via ``pystoi`` (it resamples to 10 kHz internally)."""
    from pystoi import stoi

    return float(stoi(reference.reshape(-1).double().numpy(), estimate.reshape(-1).double().numpy(), sample_rate,
                      extended=extended))


def dnsmos_score(estimate: Tensor, sample_rate: int) -> float:
    """DNSMOS P.835 overall quality (non-intrusive: the reference is not used) via ``speechmos``.

    ``speechmos`` ships its ONNX models inside the wheel, so it runs offline. It refuses values outside
    [-1, 1]; loudness-normalised speech can peak slightly above, so the signal is clipped for this metric only.
    """
    from speechmos import dnsmos

    wav = _resample(estimate.reshape(-1), sample_rate, DNSMOS_RATE).clamp(-1.0, 1.0).float().numpy()
    return float(dnsmos.run(wav, DNSMOS_RATE)["ovrl_mos"])


@dataclass
class FileMetrics:
    """Metrics of one (reference, decoded) pair; a failed metric is NaN with its message in ``errors``."""

    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def compute_metrics(estimate: Tensor, reference: Tensor, sample_rate: int,
                    metrics: Sequence[str] = ("si_sdr", "mel", "stft", "noise_floor", "pesq_wb", "pesq_nb",
                                              "stoi")) -> FileMetrics:
    """Every requested metric for one pair, never raising for a metric's own failure.

    Args:
        estimate, reference: (1, T) signals of exactly the same length at ``sample_rate``.
        metrics: keys from ``METRICS``.

    Raises:
        ValueError: for unknown metric names or different lengths (a length mismatch is a bug upstream,
        never trimmed silently here).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}, allowed: {list(METRICS)}")
    if estimate.shape[-1] != reference.shape[-1]:
        raise ValueError(f"estimate has {estimate.shape[-1]} samples but the reference has {reference.shape[-1]}")
    calls = {
        "si_sdr": lambda: float(si_sdr(estimate.reshape(-1), reference.reshape(-1))),
        "mel": lambda: mel_distance(estimate, reference, sample_rate),
        "stft": lambda: stft_distance(estimate, reference, sample_rate),
        "noise_floor": lambda: noise_floor(estimate, reference, sample_rate),
        "pesq_wb": lambda: pesq_score(estimate, reference, sample_rate, "wb"),
        "pesq_nb": lambda: pesq_score(estimate, reference, sample_rate, "nb"),
        "stoi": lambda: stoi_score(estimate, reference, sample_rate),
        "mos": lambda: dnsmos_score(estimate, sample_rate),
    }
    out = FileMetrics()
    for name in metrics:
        try:
            out.values[name] = calls[name]()
        except Exception as err:  # noqa: BLE001 - a metric failing on one file is data, not a crash
            out.values[name] = math.nan
            out.errors[name] = f"{type(err).__name__}: {err}"
    return out


# ------------------------------------------------------------------------------------------------------------
# timing


class Stopwatch:
    """Accumulates wall-clock seconds of a block; synchronises CUDA so that queued kernels are counted.

    Example::

        enc = Stopwatch(device)
        with enc:
            tokens = codec.encode(...)
        rtf = real_time_factor(enc.seconds, audio_seconds)
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.cuda = torch.device(device).type == "cuda"
        self.seconds = 0.0
        self.calls = 0
        self._start = 0.0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def __enter__(self) -> Stopwatch:
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._start
        self.calls += 1


def real_time_factor(compute_seconds: float, audio_seconds: float) -> float:
    """Seconds of compute per second of audio (< 1 is faster than real time); NaN without audio."""
    return compute_seconds / audio_seconds if audio_seconds > 0 else math.nan
