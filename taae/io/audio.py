"""Audio I/O and the one pre-processing path every waveform takes: mono, resample, loudness (§1, §9 item 6).

Shape legend: C channels, T samples.

Files are read and written with ``soundfile``; resampling and BS.1770 loudness come from ``torchaudio.functional``.
The official code pre-processes file input only and takes tensors as already 16 kHz and normalised; here
:func:`preprocess` serves both, and bad input raises an error that names the file (or tensor) and the problem.

Nothing changes the signal silently:

- **Float input beyond ±1** (a float WAV above 0 dBFS, int16-scale tensors) is measured as it is and scaled to the
  loudness target like any input, with a warning naming the peak. (torchaudio's BS.1770 filters clamp to ±1, which
  read a peak-22.5 clip as −2.7 LUFS and coded it at −7.4 LUFS; :func:`loudness` measures loud clips scaled down.)
  Without loudness normalisation the codec refuses such input (``taae.codec.Codec.preprocess``).
- **A truncated file** (a WAV whose header declares more data than the file holds) is refused, naming the frames
  present and expected; libsndfile would silently return the readable part.
- The **gain** applied by normalisation is returned by :func:`preprocess_with_gain`, so that a token file can
  record it and decoding can give the audio back at the level it came in.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from taae.io.atomic import write_bytes

BS1770_BLOCK_SECONDS = 0.4
"""BS.1770 gating block: shorter clips are tiled up to one block before measuring (see :func:`loudness`)."""
BS1770_MAX_CHANNELS = 5
"""Channel weights exist for L, R, C, Ls, Rs only."""
MAX_CHANNELS = 64
"""More channels than this almost surely means a transposed (T, C) array."""
LOUDNESS_MEASURE_PEAK = 0.25
"""Louder clips are measured scaled to this peak, then the gain is added back: torchaudio's K-weighting biquads
clamp their output to ±1 and their cascade gains up to 3.3× (measured on an impulse at 8–48 kHz), so below 0.25 no
sample is clamped. Scaling moves the −70 LUFS absolute gate by at most 12 dB for a full-scale clip; the −10 LU
relative gate already removes those blocks in speech."""
STREAMED_SIZES = (0, 0xFFFFFFFF)
"""Data-chunk sizes that streaming writers (ffmpeg to a pipe) leave in a WAV header: unknown, not truncated."""
_CHUNK_SIZE = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_BLOCK_ALIGN = re.compile(r"Block Align\s*:\s*(\d+)")


class AudioError(ValueError):
    """A file or waveform that cannot be used as audio; the message names the source and the problem."""


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
"""What a folder search treats as audio (training data, ``taae encode``, evaluation): formats libsndfile reads."""
TARGET_LUFS = -20.0
"""Loudness (BS.1770) of every codec input and the centre of the training data's levels: stable-codec's data loader
normalises utterances to −20 ± 5 LUFS (its ``VolumeNorm``), so the codec is used at the level it was trained at."""


def load_audio(path: str | os.PathLike) -> tuple[Tensor, int]:
    """Read an audio file.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, ...).

    Returns:
        ``(wav, sample_rate)`` with ``wav`` a float32 tensor (C, T) in [-1, 1] for PCM files.

    Raises:
        FileNotFoundError: no such file.
        AudioError: the file is empty (0 frames), corrupt, truncated or not audio.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"cannot read audio file {path}: it is a directory")
    try:
        check_complete(path, sf.info(str(path)))
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        if isinstance(e, AudioError):
            raise
        raise AudioError(f"cannot read audio file {path}: {e}") from e
    if data.shape[0] == 0:
        raise AudioError(f"audio file {path} is empty (0 frames)")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sample_rate)


def check_complete(path: Path, info) -> None:
    """Refuse a file whose header declares more audio than it holds (libsndfile logs "data : N (should be M)").

    ``info`` is ``soundfile.info(path)``. Every reader of audio files runs it (``taae encode``, training data,
    ``taae prepare``), so a truncated file is refused the same way everywhere.
    """
    match = _CHUNK_SIZE.search(info.extra_info or "")
    if match is None:
        return
    declared, present = int(match.group(1)), int(match.group(2))
    if declared in STREAMED_SIZES or declared <= present:
        return
    align = _BLOCK_ALIGN.search(info.extra_info)
    block = int(align.group(1)) if align else max(1, present // max(info.frames, 1))
    raise AudioError(f"audio file {path} is truncated: {info.frames} frames present, its header declares "
                     f"{declared // block} ({present} of {declared} data bytes); re-encode or re-download it")


def save_audio(path: str | os.PathLike, wav: Tensor, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write a waveform atomically; the format follows the extension, parent folders are created.

    The file is encoded in memory and then written through :mod:`taae.io.atomic`: a failed write (a full disk)
    leaves a previous file at ``path`` untouched and raises ``OSError`` naming the cause, where libsndfile writing
    in place would leave a truncated file that still opens as valid audio.

    Args:
        path: output file (``.wav``, ``.flac``, ...).
        wav: (C, T) or (T,) float waveform in [-1, 1].
        sample_rate: in Hz.
        subtype: libsndfile subtype (``PCM_16``, ``PCM_24``, ``FLOAT``, ...).
    """
    file_format = Path(path).suffix.lstrip(".").upper()
    if file_format not in sf.available_formats():
        raise ValueError(f"cannot write {path}: unknown audio format {Path(path).suffix!r}; use one of "
                         f"{sorted('.' + f.lower() for f in sf.available_formats())}")
    wav = _as_2d(wav, f"waveform for {path}")
    _check_rate(sample_rate, "sample_rate")
    if not torch.isfinite(wav).all():
        raise AudioError(f"refusing to write {path}: the waveform has NaN or inf samples")
    data = wav.detach().to("cpu", torch.float32)
    peak = data.abs().max().item() if data.numel() else 0.0
    if peak > 1.0 and not subtype.upper().startswith(("FLOAT", "DOUBLE")):
        # libsndfile wraps out-of-range floats around when converting to integers, so clip explicitly.
        warnings.warn(f"{path}: peak {peak:.3f} > 1, samples clipped to [-1, 1] for {subtype}", stacklevel=2)
        data = data.clamp(-1.0, 1.0)
    buffer = io.BytesIO()
    try:
        sf.write(buffer, data.numpy().T, int(sample_rate), subtype=subtype, format=file_format)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(f"cannot write {path} as {file_format}/{subtype}: {err}") from err
    write_bytes(path, buffer.getvalue())


def to_mono(wav: Tensor) -> Tensor:
    """Average the channels: (C, T) or (T,) -> (1, T)."""
    wav = _as_2d(wav, "waveform")
    return wav.mean(dim=0, keepdim=True) if wav.shape[0] > 1 else wav


def resample(wav: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Band-limited resampling along the last axis (sinc interpolation); a no-op when the rates match."""
    _check_rate(orig_sr, "orig_sr")
    _check_rate(new_sr, "new_sr")
    if orig_sr == new_sr:
        return wav
    return AF.resample(wav, int(orig_sr), int(new_sr))


def loudness(wav: Tensor, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770, gated).

    Clips shorter than one 0.4 s gating block are tiled (repeated end to end) up to one block, so the measure
    still reflects the clip's own K-weighted power instead of crashing or being diluted by zero padding.

    Args:
        wav: (C, T) or (T,) waveform, at most 5 channels.
        sample_rate: in Hz.

    Returns:
        The loudness; ``-inf`` for silence or a clip whose blocks all fall under the -70 LUFS absolute gate,
        never NaN.
    """
    wav = _as_2d(wav, "waveform").to(torch.float32)
    _check_rate(sample_rate, "sample_rate")
    if wav.shape[0] > BS1770_MAX_CHANNELS:
        raise ValueError(f"BS.1770 loudness supports up to {BS1770_MAX_CHANNELS} channels, got {wav.shape[0]}")
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    if wav.shape[-1] == 0 or not peak > 0:
        return -math.inf
    block = int(round(BS1770_BLOCK_SECONDS * sample_rate))
    if wav.shape[-1] < block:
        wav = wav.repeat(1, math.ceil(block / wav.shape[-1]))[:, :block]
    scale = min(1.0, LOUDNESS_MEASURE_PEAK / peak)
    value = float(AF.loudness(wav * scale, int(sample_rate))) - 20.0 * math.log10(scale)
    return value if math.isfinite(value) else -math.inf  # NaN means every block was gated out


def loudness_gain(
    wav: Tensor, sample_rate: int, target_lufs: float, peak: float = 0.95, silence_power: float = 1e-6
) -> float:
    """The linear gain :func:`normalize_loudness` applies (1.0 for silence and unmeasurable clips)."""
    if not 0 < peak <= 1:
        raise ValueError(f"peak must be in (0, 1], got {peak}")
    if wav.numel() == 0 or wav.float().square().mean().item() < silence_power:
        return 1.0
    measured = loudness(wav, sample_rate)
    if not math.isfinite(measured):
        return 1.0
    gain = 10.0 ** ((target_lufs - measured) / 20.0)
    top = float(wav.abs().max()) * gain
    return gain * peak / top if top >= 1.0 else gain


def normalize_loudness(
    wav: Tensor, sample_rate: int, target_lufs: float, peak: float = 0.95, silence_power: float = 1e-6
) -> Tensor:
    """Scale a clip to a target loudness (the official VolumeNorm, §1).

    Args:
        wav: (C, T) or (T,) waveform.
        sample_rate: in Hz.
        target_lufs: target integrated loudness.
        peak: if the scaled clip reaches |x| >= 1, it is rescaled to this peak instead.
        silence_power: clips whose mean power is below this are returned unchanged (no gain from noise).

    Returns:
        The scaled waveform, same shape; always finite for finite input.
    """
    gain = loudness_gain(wav, sample_rate, target_lufs, peak, silence_power)
    return wav if gain == 1.0 else wav * gain


def preprocess(
    wav: Tensor,
    sample_rate: int,
    target_sample_rate: int,
    target_lufs: float | None = TARGET_LUFS,
    source: str | None = None,
) -> Tensor:
    """The single pre-processing path for files and tensors: mono, resample, loudness.

    Args:
        wav: (C, T) or (T,) float waveform.
        sample_rate: rate of ``wav`` in Hz.
        target_sample_rate: output rate in Hz.
        target_lufs: loudness target (see :func:`normalize_loudness`); ``None`` keeps the level.
        source: name of the input used in error messages (a file path); defaults to "tensor input".

    Returns:
        (1, T') float32 waveform at ``target_sample_rate``.

    Raises:
        ValueError: bad shape, dtype or rates.
        AudioError: empty input or non-finite samples.
    """
    return preprocess_with_gain(wav, sample_rate, target_sample_rate, target_lufs, source)[0]


def preprocess_with_gain(
    wav: Tensor,
    sample_rate: int,
    target_sample_rate: int,
    target_lufs: float | None = TARGET_LUFS,
    source: str | None = None,
    refuse_beyond_unit: bool = False,
) -> tuple[Tensor, float]:
    """:func:`preprocess`, and the loudness gain it applied in dB (0.0 with ``target_lufs=None``).

    Input beyond ±1 is scaled like any other, with a warning naming its peak (see the module docstring); with
    ``target_lufs=None`` and ``refuse_beyond_unit`` it raises ``AudioError`` instead (a codec would code it as is).
    """
    name = source or "tensor input"
    if not isinstance(wav, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(wav).__name__}")
    if not wav.is_floating_point():
        raise ValueError(f"{name}: expected a float waveform in [-1, 1], got dtype {wav.dtype}")
    wav = _as_2d(wav, name)
    _check_rate(sample_rate, "sample_rate")
    _check_rate(target_sample_rate, "target_sample_rate")
    if wav.shape[-1] == 0:
        raise AudioError(f"{name}: empty waveform (0 samples)")
    if not torch.isfinite(wav).all():
        raise AudioError(f"{name}: waveform has NaN or inf samples")
    peak = float(wav.abs().max())
    if peak > 1.0 and target_lufs is None and refuse_beyond_unit:
        raise AudioError(f"{name}: peak {peak:.4g} is beyond ±1 and loudness normalisation is off; scale the input "
                         "to [-1, 1] (int16 samples: divide by 32768) or keep normalisation on")
    wav = resample(to_mono(wav.to(torch.float32)), sample_rate, target_sample_rate)
    if target_lufs is None:
        return wav, 0.0
    if peak > 1.0:
        warnings.warn(f"{name}: peak {peak:.4g} is beyond ±1 (int16-scale samples? divide by 32768); it is "
                      f"measured as it is and scaled to {target_lufs:g} LUFS like any input", stacklevel=3)
    gain = loudness_gain(wav, target_sample_rate, target_lufs)
    return wav * gain, 20.0 * math.log10(gain)


def load_and_preprocess(path: str | os.PathLike, target_sample_rate: int,
                        target_lufs: float | None = TARGET_LUFS) -> Tensor:
    """:func:`load_audio` then :func:`preprocess`: a (1, T') float32 waveform at ``target_sample_rate``."""
    wav, sample_rate = load_audio(path)
    return preprocess(wav, sample_rate, target_sample_rate, target_lufs, source=str(path))


def _as_2d(wav: Tensor, name: str) -> Tensor:
    if wav.dim() == 1:
        return wav.unsqueeze(0)
    if wav.dim() != 2:
        raise ValueError(f"{name}: expected a waveform of shape (C, T) or (T,), got {tuple(wav.shape)}")
    if wav.shape[0] > MAX_CHANNELS:
        raise ValueError(
            f"{name}: shape {tuple(wav.shape)} has {wav.shape[0]} channels; expected (C, T), was (T, C) passed?"
        )
    return wav


def _check_rate(rate: int, name: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"{name} must be a positive integer in Hz, got {rate!r}")
