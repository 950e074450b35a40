"""Corpus tokenization throughput: hours of audio tokenized per hour per device, through the whole job.

The job is ``taae tokenize`` end to end on one device: Shar shards read and decoded, mono, resample, −20 LUFS,
one cut per forward (batch 1) and, side by side, ``--batch-seconds`` (a shard's cuts of equal frame counts share a
forward; the two runs' tokens are checked equal), token shards and the manifest written. Each model and mode
runs on a fresh output folder over the same Shar set (``--files`` cuts of ``--seconds`` s: the demo speech when
``data/demo/train`` exists, else a speech-like synthetic), after one warm-up run on a single shard.
Random weights: throughput does not depend on them.

    python benchmarks/tokenize_throughput.py                                   # tiny + ladder 25m on the CPU
    python benchmarks/tokenize_throughput.py --accelerator gpu --files 400     # on a GPU
    python benchmarks/tokenize_throughput.py --models tiny --num-workers 2
    python benchmarks/tokenize_throughput.py --length-steps 4     # cut lengths 0.5–1.5 × --seconds, 4 values
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
from taae.codec import Codec  # noqa: E402
from taae.data.prepare import prepare  # noqa: E402
from taae.io.audio import save_audio  # noqa: E402
from taae.io.registry import model_spec  # noqa: E402
from taae.jobs.tokenize import tokenize  # noqa: E402
from taae.models import from_config  # noqa: E402

MODELS = {"tiny": [ROOT / "configs/taae/tiny.yaml"],
          "25m": [ROOT / "configs/taae/recipe.yaml", ROOT / "configs/taae/ladder/25m.yaml"],
          "240m": [ROOT / "configs/taae/recipe.yaml", ROOT / "configs/taae/ladder/240m.yaml"]}


def corpus(folder: Path, files: int, seconds: float, length_steps: int = 1) -> float:
    """Write ``files`` wavs into ``folder``, of ``seconds`` s, or cycling through ``length_steps`` lengths from
    0.5 to 1.5 × ``seconds`` (whole 40 ms frames); returns the total audio seconds."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from codec_speed import speech

    if length_steps == 1:
        sizes = [round(seconds * 16000)] * files
    else:
        steps = [0.5 + k / (length_steps - 1) for k in range(length_steps)]
        sizes = [round(seconds * steps[i % length_steps] * 25) * 640 for i in range(files)]
    wav = speech(sum(sizes) / 16000 + 1, folder=ROOT / "data/demo/train")
    folder.mkdir(parents=True)
    start = 0
    for i, n in enumerate(sizes):
        save_audio(folder / f"cut{i:05d}.wav", wav[:, start:start + n], 16000)
        start += n
    return sum(sizes) / 16000


def same_tokens(a: Path, b: Path) -> None:
    """Raise unless two token folders hold the same cuts and tokens shard for shard."""
    from taae.jobs.token_shards import load_manifest, read_token_shard

    for x, y in zip(load_manifest(a)["shards"], load_manifest(b)["shards"], strict=True):
        for (id_x, tok_x, _), (id_y, tok_y, _) in zip(read_token_shard(a, x), read_token_shard(b, y), strict=True):
            if id_x != id_y or not (tok_x == tok_y).all():
                raise AssertionError(f"batched tokens differ from batch 1 at cut {id_x} ({a} vs {b})")


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
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="audio per forward of the batched run")
    parser.add_argument("--length-steps", type=int, default=1, help="distinct cut lengths (1: all --seconds)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="taae-bench-tokenize-"))
    try:
        audio = corpus(work / "wav", args.files, args.seconds, args.length_steps)
        prepare(work / "wav", work / "shar", shard_size=args.shard_size, progress=False)
        warm = work / "warm"
        warm.mkdir()
        for name in sorted(p.name for p in (work / "shar").glob("*.000000.*")):
            shutil.copy(work / "shar" / name, warm / name)
        device = torch.cuda.get_device_name() if args.accelerator == "gpu" else platform.processor() or "cpu"
        print(f"{args.files} cuts of {args.seconds:g} s ({args.length_steps} lengths) = {audio / 3600:.3f} h, "
              f"preset {args.preset}, batched at {args.batch_seconds:g} s, "
              f"{args.accelerator} ({device}), torch threads {torch.get_num_threads()}, workers {args.num_workers}")
        print(f"{'model':<8}{'params':>10}{'wall s b=1':>12}{'wall s batched':>16}"
              f"{'h audio/h b=1':>15}{'h audio/h batched':>19}{'speed-up':>10}")
        for name in args.models:
            torch.manual_seed(0)
            model = from_config(*MODELS[name])
            export = Codec(model, spec=model_spec(model)).export(work / f"model-{name}")
            kw = dict(checkpoint=str(export), preset=args.preset, accelerator=args.accelerator,
                      num_workers=args.num_workers, progress=False)
            walls = {}
            for batch in (None, args.batch_seconds):  # warm-up, then the timed run, for each mode
                tokenize(str(warm), work / f"warm-{name}-{batch}", batch_seconds=batch, **kw)
                start = time.perf_counter()
                report = tokenize(str(work / "shar"), work / f"tok-{name}-{batch}", batch_seconds=batch, **kw)
                walls[batch] = time.perf_counter() - start
                assert report.cuts == args.files, report.summary()
            same_tokens(work / f"tok-{name}-None", work / f"tok-{name}-{args.batch_seconds}")
            params = sum(p.numel() for p in model.parameters()) / 1e6
            one, many = walls[None], walls[args.batch_seconds]
            print(f"{name:<8}{params:>9.1f}M{one:>12.1f}{many:>16.1f}{audio / one:>15.1f}{audio / many:>19.1f}"
                  f"{one / many:>9.2f}×")  # s per s = h per h
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
