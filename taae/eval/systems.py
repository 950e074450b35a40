"""The interface every system under evaluation implements, and the taae codec as one.

Shape legend: T samples, K tokens per frame, S frames.

A ``System`` maps a preprocessed reference ``(1, T)`` at its ``sample_rate`` to a ``SystemOutput`` whose audio
has exactly T samples. Systems that work on whole frames pad their input to whole frames themselves and crop that
padding away; any other change of length is recorded in ``SystemOutput.length_change`` and one beyond
``max_length_change`` seconds raises, because a codec that shifts or stretches audio by more than a few ms would
make every sample-aligned metric (SI-SDR, mel, STOI) meaningless. The reference codecs are in
:mod:`taae.eval.references`, the field's neural codecs in :mod:`taae.eval.baselines`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from taae.eval.metrics import Stopwatch

MAX_LENGTH_CHANGE_S = 0.005
"""Largest unexplained change of length (seconds) a reference codec may make before it counts as a bug (ours)."""


@dataclass
class SystemOutput:
    """What a system returns for one file."""

    audio: Tensor
    """(1, T) float32, exactly as long as the input."""
    length_change: int = 0
    """Samples the system produced minus the samples it was given (after its own frame padding); we padded or
    cropped by this much to get back to T."""
    tokens: Tensor | None = None
    """(1, K, S) int64 for codecs whose tokens we can see (the taae codec), else None."""
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    seconds: float = 0.0
    """Wall-clock seconds of the whole round trip (for reference codecs: including program start-up)."""


def match_length(wav: Tensor, num_samples: int, max_change: int) -> tuple[Tensor, int]:
    """Crop or zero-pad ``wav`` (1, T') to ``num_samples``; return it and ``T' - num_samples``.

    Raises:
        ValueError: if ``|T' - num_samples| > max_change``.
    """
    change = wav.shape[-1] - num_samples
    if abs(change) > max_change:
        raise ValueError(f"output has {wav.shape[-1]} samples for an input of {num_samples} "
                         f"({change:+d}), more than the {max_change} allowed")
    if change > 0:
        wav = wav[..., :num_samples]
    elif change < 0:
        wav = torch.nn.functional.pad(wav, (0, -change))
    return wav, change


class System:
    """A system under evaluation. Subclasses implement ``_process``; ``process`` enforces the length."""

    name: str = "system"
    bitrate: float | None = None
    """Nominal bits per second, None for systems that do not code (identity, noise)."""
    kind: str = "reference"
    in_worker: bool = True
    """True for systems cheap and picklable enough to run inside the metric worker processes."""

    def __init__(self, sample_rate: int = 16000, max_length_change: float = MAX_LENGTH_CHANGE_S):
        self.sample_rate = sample_rate
        self.max_length_change = max_length_change

    def _process(self, ref: Tensor) -> Tensor:
        raise NotImplementedError

    def process(self, ref: Tensor) -> SystemOutput:
        """Code and decode ``ref`` (1, T); returns audio of exactly T samples."""
        if ref.dim() != 2 or ref.shape[0] != 1:
            raise ValueError(f"{self.name}: expected a mono (1, T) reference, got shape {tuple(ref.shape)}")
        watch = Stopwatch()
        with watch:
            out = self._process(ref).reshape(1, -1).float()
        audio, change = match_length(out, ref.shape[-1], round(self.max_length_change * self.sample_rate))
        return SystemOutput(audio=audio, length_change=change, seconds=watch.seconds)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, bitrate={self.bitrate})"


class CodecSystem(System):
    """A taae ``Codec`` at one preset; runs in the main process (model inference) and keeps its tokens.

    The reference handed in is already preprocessed the way the codec preprocesses (mono, codec rate,
    -20 LUFS), so it is encoded with ``normalize=False``; the decoded audio must have exactly T samples.
    """

    kind = "codec"
    in_worker = False

    def __init__(self, codec, preset: str, device: str | torch.device | None = None):
        super().__init__(codec.sample_rate)
        presets = codec.presets()
        # Codec.resolve_preset maps aliases ("700bps" → "2x15625_700bps") and registers stage strings.
        resolved = codec.resolve_preset(preset) if hasattr(codec, "resolve_preset") else preset
        presets = codec.presets()
        if resolved not in presets:
            raise ValueError(f"unknown preset {preset!r}, this codec has {list(presets)}")
        self.codec, self.preset, self.spec = codec, resolved, presets[resolved]
        self.device = torch.device(device if device is not None else getattr(codec, "device", "cpu"))
        self.bitrate = float(self.spec.bitrate)
        # Rows are named after the model family ("taae_700bps", "rvqgan_2q"), so both can share one report.
        family = type(codec.model).__name__.lower() if hasattr(codec, "model") else "codec"
        self.name = f"{family}_{preset}"
        self.encode_watch, self.decode_watch = Stopwatch(self.device), Stopwatch(self.device)

    @torch.inference_mode()
    def warmup(self, ref: Tensor) -> None:
        """One untimed round trip, so lazy initialisation (kernels, autotuning) stays out of the RTF."""
        tokens = self.codec.encode(ref, self.sample_rate, preset=self.preset, normalize=False)
        self.codec.decode(tokens, preset=self.preset, num_samples=ref.shape[-1])

    @torch.inference_mode()
    def process(self, ref: Tensor) -> SystemOutput:
        num = ref.shape[-1]
        enc0, dec0 = self.encode_watch.seconds, self.decode_watch.seconds
        with self.encode_watch:
            tokens = self.codec.encode(ref, self.sample_rate, preset=self.preset, normalize=False)
        with self.decode_watch:
            audio = self.codec.decode(tokens, preset=self.preset, num_samples=num)
        audio = audio.detach().float().cpu().reshape(1, -1)
        if audio.shape[-1] != num:
            raise ValueError(f"{self.name}: decode returned {audio.shape[-1]} samples for num_samples={num}")
        return SystemOutput(audio=audio, tokens=tokens.detach().cpu().long(),
                            encode_seconds=self.encode_watch.seconds - enc0,
                            decode_seconds=self.decode_watch.seconds - dec0,
                            seconds=self.encode_watch.seconds - enc0 + self.decode_watch.seconds - dec0)


# ------------------------------------------------------------------------------------------------------------
# discovery
