"""Real-time factor of ``Codec.encode`` / ``Codec.decode`` on CPU (arXiv 2411.19842 App. A.9: RTF stays competitive).

RTF = compute seconds / audio seconds (lower is faster; 0.01 = 100x faster than real time). Encode includes the
pre-processing (mono, resample, loudness), as a user pays it. Median over ``--reps`` after one warm-up call.

    python benchmarks/codec_speed.py                                  # configs/taae/tiny.yaml, random weights
    python benchmarks/codec_speed.py --checkpoint runs/x/last.ckpt    # a trained model
    python benchmarks/codec_speed.py --config configs/rvqgan/tiny.yaml --presets native 1q
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import taae  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
from taae.codec import Codec  # noqa: E402
from taae.io.audio import load_audio, resample, to_mono  # noqa: E402

INLINE_TINY = {"class_path": "taae.models.taae.TAAE",
               "init_args": {"config": {"stem_width": 128, "widths": [128, 128], "strides": [1, 2], "depths": [2, 2]}}}


def speech(seconds: float, sample_rate: int = 16000, folder: Path | None = None, seed: int = 0) -> torch.Tensor:
    """(1, T) audio: the demo speech files end to end when ``folder`` has any, else a speech-like synthetic."""
    n = round(seconds * sample_rate)
    files = sorted(folder.rglob("*.wav")) if folder is not None and folder.is_dir() else []
    if files:
        pieces, total = [], 0
        while total < n:
            for path in files:
                wav, rate = load_audio(path)
                pieces.append(resample(to_mono(wav), rate, sample_rate))
                total += pieces[-1].shape[-1]
                if total >= n:
                    break
        return torch.cat(pieces, dim=-1)[:, :n]
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, 10 * sample_rate):  # 10 s blocks keep the temporaries small for long inputs
        t = torch.arange(start, min(n, start + 10 * sample_rate), dtype=torch.float64) / sample_rate
        phase = 2 * math.pi * 120 * t - 30 / 0.7 * torch.cos(2 * math.pi * 0.7 * t)  # 2π∫f0
        voiced = sum(torch.sin(k * phase) / k for k in range(1, 20))
        envelope = 0.5 * (1 - torch.cos(2 * math.pi * 3.0 * t))
        out.append((0.1 * envelope * voiced + 0.02 * torch.randn(t.shape, generator=g, dtype=torch.float64)).float())
    return torch.cat(out).unsqueeze(0)


def build_codec(args) -> Codec:
    if args.checkpoint:
        return Codec.load(args.checkpoint)
    from taae.io.registry import instantiate
    from taae.models import from_config

    if args.config and Path(args.config).is_file():
        return Codec(from_config(args.config))
    print(f"{args.config} not found: using an inline tiny TAAE")
    return Codec(instantiate(INLINE_TINY))


def timed(fn, reps: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitives
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/taae/tiny.yaml"))
    parser.add_argument("--checkpoint", default=None, help="a trained .ckpt or export (overrides --config)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=None, help="default: every preset without aliases")
    parser.add_argument("--audio", default=str(ROOT / "data/demo"), help="folder of speech .wav (else synthetic)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    codec = build_codec(args)
    wav = speech(args.seconds, codec.sample_rate, Path(args.audio))
    presets = args.presets or [p for p in codec.presets() if p not in codec.aliases()]
    print(f"{type(codec.model).__name__}, {codec.num_parameters:,} parameters, {args.seconds:g} s of audio, "
          f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}, "
          f"median of {args.reps}")
    print(f"{'preset':<18}{'encode s':>10}{'decode s':>10}{'RTF enc':>10}{'RTF dec':>10}{'RTF total':>11}"
          f"{'x real time':>13}")
    for preset in presets:
        tokens = codec.encode(wav, codec.sample_rate, preset)
        enc = timed(lambda: codec.encode(wav, codec.sample_rate, preset), args.reps)
        dec = timed(lambda: codec.decode(tokens, preset), args.reps)
        total = (enc + dec) / args.seconds
        print(f"{preset:<18}{enc:>10.3f}{dec:>10.3f}{enc / args.seconds:>10.4f}{dec / args.seconds:>10.4f}"
              f"{total:>11.4f}{1 / total:>13.1f}")


if __name__ == "__main__":
    main()
