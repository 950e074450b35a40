"""Corpus tokenization throughput: hours of audio tokenized per hour per device, through the whole job.

The job is ``taae tokenize`` end to end on one device: Shar shards read and decoded, mono, resample, −20 LUFS,
one cut per forward, token shards and the manifest written. Each model runs on a fresh output folder over the
same Shar set (``--files`` cuts of ``--seconds`` s: the demo speech when ``data/demo/train`` exists, else a
speech-like synthetic), after one warm-up run on a single shard. Random weights: throughput does not depend on them.

    python benchmarks/tokenize_throughput.py                                   # tiny + ladder 25m on the CPU
    python benchmarks/tokenize_throughput.py --accelerator gpu --files 400     # on a GPU
    python benchmarks/tokenize_throughput.py --models tiny --num-workers 2
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import taae  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
from taae.audio import save_audio  # noqa: E402
from taae.codec import Codec  # noqa: E402
from taae.data.prepare import prepare  # noqa: E402
from taae.jobs.tokenize import tokenize  # noqa: E402
from taae.models import from_config, model_spec  # noqa: E402

MODELS = {"tiny": [ROOT / "configs/taae/tiny.yaml"],
          "25m": [ROOT / "configs/taae/recipe.yaml", ROOT / "configs/taae/ladder/25m.yaml"],
          "240m": [ROOT / "configs/taae/recipe.yaml", ROOT / "configs/taae/ladder/240m.yaml"]}


def corpus(folder: Path, files: int, seconds: float) -> float:
    """Write ``files`` wavs of ``seconds`` s into ``folder``; returns the total audio seconds."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from codec_speed import speech

    wav = speech(files * seconds, folder=ROOT / "data/demo/train")
    n = round(seconds * 16000)
    folder.mkdir(parents=True)
    for i in range(files):
        save_audio(folder / f"cut{i:05d}.wav", wav[:, i * n:(i + 1) * n], 16000)
    return files * n / 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "25m"], choices=list(MODELS))
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--shard-size", type=int, default=20)
    parser.add_argument("--preset", default="700bps")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="taae-bench-tokenize-"))
    try:
        audio = corpus(work / "wav", args.files, args.seconds)
        prepare(work / "wav", work / "shar", shard_size=args.shard_size, progress=False)
        warm = work / "warm"
        warm.mkdir()
        for name in sorted(p.name for p in (work / "shar").glob("*.000000.*")):
            shutil.copy(work / "shar" / name, warm / name)
        device = torch.cuda.get_device_name() if args.accelerator == "gpu" else platform.processor() or "cpu"
        print(f"{args.files} cuts × {args.seconds:g} s = {audio / 3600:.3f} h, preset {args.preset}, "
              f"{args.accelerator} ({device}), torch threads {torch.get_num_threads()}, workers {args.num_workers}")
        print(f"{'model':<8}{'params':>10}{'wall s':>10}{'h audio / h / device':>24}")
        for name in args.models:
            torch.manual_seed(0)
            model = from_config(*MODELS[name])
            export = Codec(model, spec=model_spec(model)).export(work / f"model-{name}")
            kw = dict(checkpoint=str(export), preset=args.preset, accelerator=args.accelerator,
                      num_workers=args.num_workers, progress=False)
            tokenize(str(warm), work / f"warm-{name}", **kw)
            start = time.perf_counter()
            report = tokenize(str(work / "shar"), work / f"tok-{name}", **kw)
            wall = time.perf_counter() - start
            assert report.cuts == args.files, report.summary()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            print(f"{name:<8}{params:>9.1f}M{wall:>10.1f}{audio / wall:>24.1f}")  # s per s = h per h
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
