"""The full-size TAAE on CPU: real-time factor and peak memory of encode + decode, whole and chunked.

The model is configs/taae/recipe.yaml + configs/taae/ladder/950m.yaml (955 M parameters; taae's widths and depths:
the released model's are not published, so this is the size of stable-codec-speech-16k, not its exact shape),
with random weights (speed and memory do not depend on the values). Each case runs ``Codec.encode`` then
``Codec.decode`` (700 bps) on ``--seconds`` of speech after one warm-up call; peak memory is the process's peak
RSS during the case (VmHWM, reset before it), which includes the 3.8 GB of float32 weights.

    nice -n 10 python benchmarks/full_size.py                        # 10 s, whole and in chunks
    nice -n 10 python benchmarks/full_size.py --seconds 60 --chunks 0 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import taae  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
from codec_speed import speech  # noqa: E402

from taae.codec import Codec  # noqa: E402
from taae.models import from_config  # noqa: E402

CONFIGS = [ROOT / "configs/taae/recipe.yaml", ROOT / "configs/taae/ladder/950m.yaml"]


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (Linux), 0 elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", default=[str(c) for c in CONFIGS],
                        help="YAMLs composed left to right (default: recipe + ladder 950m)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunks", type=float, nargs="+", default=[0, 10, 30],
                        help="chunk_seconds values to run (0: whole input)")
    parser.add_argument("--preset", default="700bps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--audio", default=str(ROOT / "data/demo"), help="folder of speech .wav (else synthetic)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = from_config(*args.config)
    build = time.perf_counter() - start
    wav = speech(args.seconds, 16000, Path(args.audio))
    params = sum(p.numel() for p in model.parameters())
    print(f"TAAE {params / 1e6:.1f} M parameters (built in {build:.1f} s), {args.seconds:g} s of audio, "
          f"{args.threads} threads, torch {torch.__version__}, RSS after build {_status('VmRSS') / 2**30:.2f} GiB")
    print(f"{'chunk_seconds':>14}{'encode s':>10}{'decode s':>10}{'RTF':>8}{'peak RSS GiB':>14}")
    for chunk in args.chunks:
        codec = Codec(model, chunk_seconds=chunk or None)
        tokens = codec.encode(wav, 16000, args.preset)  # warm-up
        codec.decode(tokens, args.preset)
        _reset_peak()
        t0 = time.perf_counter()
        tokens = codec.encode(wav, 16000, args.preset)
        t1 = time.perf_counter()
        codec.decode(tokens, args.preset)
        t2 = time.perf_counter()
        rtf = (t2 - t0) / args.seconds
        print(f"{chunk or 'whole':>14}{t1 - t0:>10.2f}{t2 - t1:>10.2f}{rtf:>8.2f}{_status('VmHWM') / 2**30:>14.2f}",
              flush=True)


if __name__ == "__main__":
    main()
