"""Streaming latency of a causal TAAE: algorithmic latency and measured compute per chunk on 1 and 2 CPU threads.

Algorithmic latency = the chunk (a frame's tokens exist once its last sample has arrived; the causal model looks no
further ahead); the paper's causal TAAE has 40 ms (arXiv 2411.19842, Table 11). Compute per chunk is encode +
decode of one chunk, as a live link runs them, timed over a stream of ``--seconds`` of speech after a warm-up;
``cpu`` is the calling thread's CPU time, less disturbed than wall time by other processes on a shared machine.
The offline row times ``model.encode`` + ``model.decode`` of the whole signal in the same run, for the ratio.

    python benchmarks/streaming.py                                         # the causal_tiny stack, random init
    python benchmarks/streaming.py --checkpoint runs/causal_tiny/checkpoints/last.ckpt --chunk-frames 1 2 5
    python benchmarks/streaming.py --device cuda --threads 1               # GPU
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CAUSAL_TINY = ("taae/tiny.yaml", "data/demo.yaml", "trainer/cpu.yaml", "taae/quickstart.yaml", "taae/causal_tiny.yaml")
"""How configs/taae/causal_tiny.yaml composes (its header): the quickstart's stack plus the causal override."""
try:
    import taae  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from codec_speed import speech  # noqa: E402

from taae.codec import Codec  # noqa: E402
from taae.codec.stream_file import stream_signal, timing_stats  # noqa: E402


def build_codec(args) -> Codec:
    if args.checkpoint:
        return Codec.load(args.checkpoint, device=args.device)
    from taae.models import from_config

    return Codec(from_config(*args.config), device=args.device)


def offline_seconds(codec: Codec, wav: torch.Tensor, preset: str | None, reps: int = 3) -> float:
    model, x = codec.model, wav.reshape(1, 1, -1).to(codec.device)
    times = []
    for _ in range(reps + 1):  # the first call warms up
        start = time.perf_counter()
        model.decode(model.encode(x, preset), preset)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=[str(ROOT / "configs" / name) for name in CAUSAL_TINY],
                        help="YAML files composed left to right (default: the causal quickstart)")
    parser.add_argument("--checkpoint", default=None, help="a trained causal .ckpt or export (overrides --config)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio streamed per setting")
    parser.add_argument("--chunk-frames", type=int, nargs="+", default=[1, 2, 5], help="frames per chunk")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preset", default=None, help="default: native")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--audio", default=str(ROOT / "data/demo"), help="folder of speech .wav (else synthetic)")
    args = parser.parse_args()

    codec = build_codec(args)
    wav = speech(args.seconds, codec.sample_rate, Path(args.audio))
    preset = codec.resolve_preset(args.preset)
    frame_ms = 1000 * codec.hop_length / codec.sample_rate
    print(f"{type(codec.model).__name__} causal={codec.model.config.causal}, {codec.num_parameters:,} parameters, "
          f"preset {preset}, {args.seconds:g} s of audio per row, torch {torch.__version__}, {args.device}, "
          f"{platform.processor() or platform.machine()}")
    print(f"{'threads':>7}{'chunk ms':>10}{'latency ms':>12}{'wall med ms':>13}{'wall p95 ms':>13}"
          f"{'cpu med ms':>12}{'RTF':>8}{'x real time':>13}{'offline RTF':>13}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        offline = offline_seconds(codec, wav, preset) / args.seconds
        for frames in args.chunk_frames:
            with codec.streaming(1, preset) as session:
                stream_signal(session, wav[:, : 10 * codec.hop_length].to(codec.device), frames)  # warm-up
            with codec.streaming(1, preset) as session:
                report = stream_signal(session, wav.to(codec.device), frames)
            median, p95, _ = timing_stats(report.wall)
            rtf = report.real_time_factor
            print(f"{threads:>7}{frames * frame_ms:>10g}{1e3 * report.latency:>12g}{1e3 * median:>13.2f}"
                  f"{1e3 * p95:>13.2f}{1e3 * statistics.median(report.cpu):>12.2f}{rtf:>8.3f}{1 / rtf:>13.1f}"
                  f"{offline:>13.4f}")


if __name__ == "__main__":
    main()
