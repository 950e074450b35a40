"""Reference codecs beside the model in every evaluation: Opus, Codec 2, µ-law, added noise and the identity.

Shape legend: T samples, K tokens per frame, S frames.

A ``System`` maps a preprocessed reference ``(1, T)`` at its ``sample_rate`` to a ``SystemOutput`` whose audio
has exactly T samples. Reference codecs that work on whole frames pad their input to whole frames themselves
and crop that padding away; any other change of length is recorded in ``SystemOutput.length_change`` and one
beyond ``max_length_change`` seconds raises, because a codec that shifts or stretches audio by more than a
few ms would make every sample-aligned metric (SI-SDR, mel, STOI) meaningless.

External programs: Opus runs through ``ffmpeg`` (libopus), Codec 2 through ``c2enc``/``c2dec`` (Debian
packages ``ffmpeg`` and ``codec2``). ``available_references`` skips a codec whose program is missing, with a
note, rather than failing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from taae.eval.systems import System


class Identity(System):
    """The reference itself: the ceiling of every metric."""

    name = "identity"

    def _process(self, ref: Tensor) -> Tensor:
        return ref.clone()


class AddNoise(System):
    """White Gaussian noise at a given SNR (for tests and sanity checks of the metrics)."""

    def __init__(self, snr_db: float, seed: int = 0, sample_rate: int = 16000):
        super().__init__(sample_rate)
        self.snr_db, self.seed = snr_db, seed
        self.name = f"noise_{snr_db:g}dB"

    def _process(self, ref: Tensor) -> Tensor:
        g = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        signal_power = ref.double().pow(2).mean()
        noise = noise * (signal_power / noise.pow(2).mean() / 10 ** (self.snr_db / 10)).sqrt()
        return (ref.double() + noise).float()


class MuLaw8(System):
    """8-bit µ-law companding (G.711-style, µ = 255) at the input rate: 128 kbps at 16 kHz."""

    name = "mulaw8"

    def __init__(self, sample_rate: int = 16000):
        super().__init__(sample_rate)
        self.bitrate = 8.0 * sample_rate

    def _process(self, ref: Tensor) -> Tensor:
        import torchaudio.functional as AF

        codes = AF.mu_law_encoding(ref.clamp(-1.0, 1.0), 256)
        return AF.mu_law_decoding(codes, 256)


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def _to_int16(wav: Tensor) -> np.ndarray:
    return (wav.reshape(-1).clamp(-1.0, 1.0).double() * 32767.0).round().to(torch.int16).numpy()


class Opus(System):
    """Opus (libopus through ``ffmpeg``), wide-band at 16 kHz, VoIP mode, ``bitrate`` bits per second.

    The Ogg container carries Opus's pre-skip and the end granule position, so ffmpeg returns the input length
    up to a few samples (checked by ``process``).
    """

    program = "ffmpeg"

    def __init__(self, bitrate: int = 6000, sample_rate: int = 16000):
        super().__init__(sample_rate)
        self.bitrate = float(bitrate)
        self.name = f"opus_{bitrate / 1000:g}k"

    def _process(self, ref: Tensor) -> Tensor:
        import soundfile as sf

        with tempfile.TemporaryDirectory(prefix="taae_opus_") as tmp:
            src, coded, dec = Path(tmp, "in.wav"), Path(tmp, "coded.ogg"), Path(tmp, "out.wav")
            sf.write(src, _to_int16(ref), self.sample_rate, subtype="PCM_16")
            _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(src), "-c:a", "libopus",
                  "-b:a", str(int(self.bitrate)), "-application", "voip", str(coded)])
            _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(coded), "-ar", str(self.sample_rate),
                  "-ac", "1", "-c:a", "pcm_f32le", str(dec)])
            out, _ = sf.read(dec, dtype="float32", always_2d=False)
        return torch.from_numpy(np.ascontiguousarray(out)).reshape(1, -1)


CODEC2_MODES = {"3200": 3200, "2400": 2400, "1600": 1600, "1400": 1400, "1300": 1300, "1200": 1200, "700C": 700}
CODEC2_RATE = 8000
CODEC2_FRAME = 320
"""Samples at 8 kHz in the longest Codec 2 frame (40 ms); c2enc drops a trailing partial frame, so we pad to it."""
CODEC2_MAX_DELAY_S = 0.06
"""Longest delay searched when Codec 2's output is aligned to its input (its delay measured 19–35 ms here)."""
ENVELOPE_HOP = 16
"""Samples per point of the amplitude envelopes that estimate Codec 2's delay (1 ms at 16 kHz)."""


def envelope_delay(ref: Tensor, out: Tensor, max_delay: int, hop: int = ENVELOPE_HOP) -> int:
    """The lag (samples, a multiple of ``hop``, 0 … ``max_delay``) at which ``out`` (1, T) best matches ``ref``.

    Codec 2 synthesises its own phase, so waveforms do not correlate; their amplitude envelopes (mean |x| per
    ``hop`` samples, mean removed) do, and their cross-correlation peaks at the codec's delay.
    """
    def envelope(x: Tensor) -> Tensor:
        x = x.reshape(-1).abs().double()
        e = x[: x.numel() // hop * hop].reshape(-1, hop).mean(dim=1)
        return e - e.mean()

    er, eo = envelope(ref), envelope(out)
    n = min(er.numel(), eo.numel())
    lags = range(0, min(max_delay // hop, n - 1) + 1)
    scores = [float(torch.dot(er[: n - lag], eo[lag:n])) for lag in lags]
    return max(lags, key=scores.__getitem__) * hop


class Codec2(System):
    """Codec 2 (``c2enc``/``c2dec``): 16 kHz → 8 kHz raw s16 → encode → decode → back to 16 kHz.

    Codec 2 is a parametric (sinusoidal) coder: it keeps no phase, so SI-SDR is not meaningful for it. Its output
    also lags the input by 20–35 ms; with ``align`` (the default) the lag is measured per file from the amplitude
    envelopes (:func:`envelope_delay`) and removed, so that the frame-aligned metrics (STOI, mel, STFT) score the
    codec and not its delay (unaligned, 700C's STOI on the demo test split reads 0.46 instead of 0.71). PESQ
    aligns in time by itself either way.
    """

    program = "c2enc"

    def __init__(self, mode: str = "700C", sample_rate: int = 16000, align: bool = True):
        if mode not in CODEC2_MODES:
            raise ValueError(f"unknown Codec 2 mode {mode!r}, allowed: {list(CODEC2_MODES)}")
        super().__init__(sample_rate)
        self.mode, self.align = mode, align
        self.bitrate = float(CODEC2_MODES[mode])
        self.name = f"codec2_{mode}"

    def _process(self, ref: Tensor) -> Tensor:
        import torchaudio.functional as AF

        num = ref.shape[-1]
        # Pad to whole 40 ms frames at the input rate, so the 8 kHz signal is whole frames too.
        block = CODEC2_FRAME * self.sample_rate // CODEC2_RATE
        padded = torch.nn.functional.pad(ref.double(), (0, -num % block))
        low = AF.resample(padded, self.sample_rate, CODEC2_RATE)
        with tempfile.TemporaryDirectory(prefix="taae_codec2_") as tmp:
            raw, bits, dec = Path(tmp, "in.raw"), Path(tmp, "coded.bit"), Path(tmp, "out.raw")
            _to_int16(low).astype("<i2").tofile(raw)
            _run(["c2enc", self.mode, str(raw), str(bits)])
            _run(["c2dec", self.mode, str(bits), str(dec)])
            out = np.fromfile(dec, dtype="<i2").astype(np.float64) / 32767.0
        up = AF.resample(torch.from_numpy(out).reshape(1, -1), CODEC2_RATE, self.sample_rate)
        # Our own padding is removed here; what remains is the codec's length change, checked by `process`.
        up = up[..., : num + (up.shape[-1] - padded.shape[-1])].float()
        if self.align:
            delay = envelope_delay(ref, up, round(CODEC2_MAX_DELAY_S * self.sample_rate))
            up = torch.nn.functional.pad(up[..., delay:], (0, delay))  # same length, the lag removed
        return up


@dataclass
class ReferenceSet:
    systems: list[System] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """One line per skipped reference, naming the missing program and its Debian package."""


REFERENCE_FAMILIES = ("identity", "mulaw", "opus", "codec2")
DEFAULT_OPUS_BITRATES = (6000,)
DEFAULT_CODEC2_MODES = ("700C", "1200", "3200")


def _has_libopus() -> bool:
    try:
        result = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return "libopus" in result.stdout


def available_references(families: str | list[str] = "auto", sample_rate: int = 16000,
                         opus_bitrates: tuple[int, ...] = DEFAULT_OPUS_BITRATES,
                         codec2_modes: tuple[str, ...] = DEFAULT_CODEC2_MODES) -> ReferenceSet:
    """Reference systems that can run on this machine.

    Args:
        families: ``"auto"`` (all of ``REFERENCE_FAMILIES`` whose programs exist), ``"none"``, or a list /
            comma-separated string of families.
        sample_rate: rate of the preprocessed references.

    Returns:
        ``ReferenceSet``: the usable systems plus a note for each skipped one.
    """
    if isinstance(families, str):
        families = list(REFERENCE_FAMILIES) if families == "auto" else [] if families == "none" else [
            f.strip() for f in families.split(",") if f.strip()]
    unknown = [f for f in families if f not in REFERENCE_FAMILIES]
    if unknown:
        raise ValueError(f"unknown reference systems {unknown}, allowed: {list(REFERENCE_FAMILIES)}, auto, none")
    refs = ReferenceSet()
    if "identity" in families:
        refs.systems.append(Identity(sample_rate))
    if "mulaw" in families:
        refs.systems.append(MuLaw8(sample_rate))
    if "opus" in families:
        if shutil.which("ffmpeg") is None:
            refs.notes.append("Opus skipped: `ffmpeg` not found (Debian package `ffmpeg`)")
        elif not _has_libopus():
            refs.notes.append("Opus skipped: this ffmpeg has no libopus encoder")
        else:
            refs.systems += [Opus(b, sample_rate) for b in opus_bitrates]
    if "codec2" in families:
        missing = [p for p in ("c2enc", "c2dec") if shutil.which(p) is None]
        if missing:
            refs.notes.append(f"Codec 2 skipped: {', '.join(missing)} not found (Debian package `codec2`)")
        else:
            refs.systems += [Codec2(m, sample_rate) for m in codec2_modes]
            refs.notes.append("Codec 2 is parametric: its SI-SDR is not meaningful; its 20–35 ms delay is measured "
                              "per file from the amplitude envelopes and removed before scoring")
    return refs
