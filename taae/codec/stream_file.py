"""Run a signal through the streaming path in real-time-sized chunks and time every chunk (``taae stream``).

Shape legend: T samples, K tokens per frame, S latent frames, n frames per chunk.

:func:`stream_signal` feeds a (1, T) signal to a :class:`taae.codec.streaming.StreamingSession` chunk by chunk (encode,
then decode, as a live link would) and records each chunk's compute time; :func:`stream_file` wraps it for files
(the one pre-processing path of :class:`taae.codec.Codec`, optional token file) and returns a :class:`StreamReport`.
``benchmarks/streaming.py`` uses the same loop.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from taae.codec.streaming import StreamingSession, algorithmic_latency
from taae.io import audio
from taae.io.atomic import check_not_input
from taae.io.tokens import TokenFile

__all__ = ["StreamReport", "chunk_frames_for", "stream_file", "stream_signal", "timing_stats"]


@dataclass
class StreamReport:
    """Tokens, audio and timings of one streamed signal."""

    tokens: Tensor
    """(1, K, S) int64 on the CPU."""
    audio: Tensor
    """(1, T) float32 on the CPU, cropped to the input's length."""
    chunk_frames: int
    frame_seconds: float
    """Seconds of audio per frame (hop / sample rate)."""
    latency: float
    """Algorithmic latency in seconds: one chunk (a causal TAAE has no look-ahead)."""
    wall: list[float] = field(default_factory=list)
    """Wall-clock seconds of each chunk (encode + decode)."""
    cpu: list[float] = field(default_factory=list)
    """CPU seconds of the calling thread per chunk: compute time with less noise from other processes on a busy
    machine (it misses intra-op worker threads when torch uses more than one)."""

    @property
    def chunk_seconds(self) -> float:
        return self.chunk_frames * self.frame_seconds

    @property
    def real_time_factor(self) -> float:
        """Compute time over audio time (wall clock): below 1 keeps up with real time."""
        return sum(self.wall) / (self.tokens.shape[-1] * self.frame_seconds)

    def summary(self, per_chunk: bool = False) -> str:
        """The report ``taae stream`` prints; ``per_chunk`` adds one line per chunk."""
        def ms(values: list[float]) -> str:
            median, p95, top = timing_stats(values)
            return f"median {1e3 * median:.2f} ms, p95 {1e3 * p95:.2f} ms, max {1e3 * top:.2f} ms"

        chunks = [f"chunk {i:>5}  wall {1e3 * w:8.2f} ms  cpu {1e3 * c:8.2f} ms"
                  for i, (w, c) in enumerate(zip(self.wall, self.cpu))] if per_chunk else []
        return "\n".join([*chunks,
            f"chunks          {len(self.wall)} of {self.chunk_frames} frame(s) = {1e3 * self.chunk_seconds:g} ms "
            f"({self.tokens.shape[-1]} frames, {self.tokens.shape[-1] * self.frame_seconds:.2f} s of audio)",
            f"latency         {1e3 * self.latency:g} ms algorithmic (chunk, no look-ahead) + compute",
            f"compute/chunk   wall {ms(self.wall)}",
            f"                cpu  {ms(self.cpu)} (this thread)",
            f"real-time factor {self.real_time_factor:.3f} (wall; < 1 is faster than real time)",
        ])


def timing_stats(values: list[float]) -> tuple[float, float, float]:
    """(median, 95th percentile (nearest rank), max) of per-chunk times."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], ordered[-1]


def chunk_frames_for(chunk_ms: float, hop_length: int, sample_rate: int) -> int:
    """Frames per chunk for ``chunk_ms``; ValueError unless it is a positive whole number of frames."""
    frame_ms = 1000.0 * hop_length / sample_rate
    frames = chunk_ms / frame_ms
    if not (chunk_ms > 0 and math.isfinite(chunk_ms)) or not math.isclose(frames, round(frames), abs_tol=1e-6) \
            or round(frames) < 1:
        raise ValueError(f"--chunk-ms {chunk_ms:g} is not a whole number of {frame_ms:g} ms frames "
                         f"(hop {hop_length} samples at {sample_rate} Hz); use e.g. {frame_ms:g} or {2 * frame_ms:g}")
    return round(frames)


def stream_signal(session: StreamingSession, wav: Tensor, chunk_frames: int) -> StreamReport:
    """Stream a (1, T) signal (model rate) through an open one-stream session, chunk by chunk.

    The end is padded with zeros to a whole frame, as the offline model pads it; the last chunk may be shorter.
    """
    model = session.model
    hop, length = model.hop_length, wav.shape[-1]
    frames = max(1, math.ceil(length / hop))
    x = F.pad(wav.reshape(1, 1, -1), (0, frames * hop - length))
    report = StreamReport(tokens=torch.empty(0), audio=torch.empty(0), chunk_frames=chunk_frames,
                          frame_seconds=hop / model.sample_rate, latency=algorithmic_latency(model, chunk_frames))
    tokens, pieces = [], []
    for start in range(0, frames, chunk_frames):
        chunk = x[..., start * hop: min(frames, start + chunk_frames) * hop]
        wall, cpu = time.perf_counter(), time.thread_time()
        t = session.encode(chunk)
        y = session.decode(t)
        if y.device.type == "cuda":
            torch.cuda.synchronize(y.device)
        report.cpu.append(time.thread_time() - cpu)
        report.wall.append(time.perf_counter() - wall)
        tokens.append(t.cpu())
        pieces.append(y.cpu())
    report.tokens = torch.cat(tokens, dim=-1).to(torch.int64)
    report.audio = torch.cat(pieces, dim=-1)[:, 0, :length].float()
    return report


def stream_file(codec, source: str | os.PathLike, output: str | os.PathLike, chunk_ms: float = 40.0,
                preset: str | None = None, normalize: bool = True, subtype: str = "PCM_16",
                tokens_path: str | os.PathLike | None = None) -> StreamReport:
    """Read ``source``, stream it through ``codec``'s causal model and write the decoded audio to ``output``.

    The file is pre-processed as :meth:`taae.codec.Codec.encode_file` does; loudness normalisation measures the
    whole file first, which a live stream cannot (``normalize=False`` keeps the level, as a live link would).
    ``tokens_path`` also writes the tokens as a :class:`taae.io.tokens.TokenFile` that ``taae decode`` reads.
    """
    check_not_input(output, [source])
    if tokens_path is not None:
        check_not_input(tokens_path, [source], "--tokens")
        check_not_input(tokens_path, [output], "--tokens")
    wav, rate = audio.load_audio(source)
    x, gain_db = codec.preprocess_with_gain(wav, rate, normalize, source=str(source))  # (1, T)
    chunk_frames = chunk_frames_for(chunk_ms, codec.hop_length, codec.sample_rate)
    name = codec.resolve_preset(preset)
    with codec.streaming(1, name) as session:
        report = stream_signal(session, x.to(codec.device), chunk_frames)
    # Back at the input's level, as `taae decode` gives it (the gain applied before coding is undone).
    level = 10.0 ** (-gain_db / 20.0)
    audio.save_audio(output, report.audio * level, codec.sample_rate, subtype)  # atomic (taae.io.atomic)
    if tokens_path is not None:
        token_file = TokenFile(tokens=report.tokens, preset=name, sample_rate=codec.sample_rate,
                               num_samples=x.shape[-1], frame_rate=codec.frame_rate, model_hash=codec.model_hash,
                               vocab_sizes=codec.presets()[name].vocab_sizes, gain_db=gain_db)
        token_file.save(tokens_path)  # atomic too
    return report
