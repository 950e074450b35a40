"""Stage 1 → stage 2 end to end on the demo set, and what the WavLM term does to the metrics.

    python benchmarks/stage2.py                                   # random WavLM (plumbing only), 2-core CPU
    python benchmarks/stage2.py --wavlm /path/to/wavlm-large      # the real teacher, on a connected machine
    python benchmarks/stage2.py --stage1 runs/quickstart          # stage 2 on a finished stage-1 run

Runs the documented commands (``train.py fit`` / ``evaluate.py``) in subprocesses, under ``--out``:
  1. stage 1: ``configs/taae/tiny.yaml`` + demo data + ``configs/trainer/cpu.yaml`` for ``--stage1-batches``, or the
     run folder ``--stage1`` names (its ``tb/config.yaml`` and ``checkpoints/last.ckpt``: ``make quickstart``'s);
  2. stage 2 from stage 1's saved ``tb/config.yaml`` and ``last.ckpt`` + ``configs/taae/finetune_wavlm.yaml`` for
     ``--stage2-batches``, twice: with the perceptual term, and with its weight 0 (the control: the same
     fine-tuning schedule without WavLM);
  3. ``evaluate.py`` of the three checkpoints at one preset; prints one table (mean over the test files).

With the randomly initialised WavLM (``taae.losses.perceptual.save_random_wavlm``, no hub here) the term carries
no perceptual knowledge: the run proves the plumbing, not the paper's quality gain (arXiv 2411.19842, App. A.1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from taae.losses.perceptual import save_random_wavlm

METRICS = ("mel", "stft", "si_sdr", "pesq_wb", "stoi")


def _run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _trainer(root: Path, batches: int) -> list[str]:
    # Lightning counts G and D steps: 2 per batch. One validation (and last.ckpt) at the end.
    return ["--trainer.default_root_dir", str(root), "--trainer.max_steps", str(2 * batches),
            "--trainer.max_time", "null", "--trainer.val_check_interval", str(batches),
            "--trainer.enable_progress_bar", "false"]


def _evaluate(checkpoint: Path, out: Path, args) -> dict:
    _run([sys.executable, "evaluate.py", "--checkpoint", str(checkpoint), "--data", args.test, "--out", str(out),
          "--presets", args.preset, "--references", "none", "--no-mos", "--examples", "0"])
    report = json.loads((out / "report.json").read_text())
    system = next(s for s in report["systems"].values() if s["kind"] == "codec")
    return {m: system["metrics"][m]["mean"] for m in METRICS if m in system["metrics"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/stage2_demo")
    parser.add_argument("--wavlm", default=None, help="WavLM folder (default: a random one saved under --out)")
    parser.add_argument("--stage1", default=None,
                        help="a finished stage-1 run (tb/config.yaml, checkpoints/last.ckpt); default: train one")
    parser.add_argument("--stage1-batches", type=int, default=100)
    parser.add_argument("--stage2-batches", type=int, default=50)
    parser.add_argument("--data-root", default=None,
                        help="a folder with train/ val/ test/ speech (default: the demo set, data/demo)")
    parser.add_argument("--preset", default="700bps")
    args = parser.parse_args()
    args.test = str(Path(args.data_root or "data/demo", "test"))
    data = [] if args.data_root is None else [
        f"--data.init_args.{split}={Path(args.data_root, split)}" for split in ("train", "val", "test")]
    out = Path(args.out)
    stage1 = Path(args.stage1) if args.stage1 else out / "stage1"
    if args.stage1:
        missing = [str(stage1 / f) for f in ("tb/config.yaml", "checkpoints/last.ckpt") if not (stage1 / f).is_file()]
        if missing:
            parser.error(f"--stage1 {stage1}: not a finished training run, missing {', '.join(missing)}")
    wavlm = Path(args.wavlm) if args.wavlm else save_random_wavlm(out / "wavlm-random")
    if not args.stage1 and not (stage1 / "checkpoints" / "last.ckpt").is_file():
        _run([sys.executable, "train.py", "fit", "--config", "configs/taae/tiny.yaml", "--config",
              "configs/data/demo.yaml", "--config", "configs/trainer/cpu.yaml", *_trainer(stage1, args.stage1_batches),
              *data])
    rows = {"stage 1": _evaluate(stage1 / "checkpoints" / "last.ckpt", out / "eval" / "stage1", args)}
    for name, weight in (("stage 2, WavLM term", 1.0), ("stage 2, weight 0 (control)", 0.0)):
        root = out / ("stage2" if weight else "stage2_control")
        if not (root / "checkpoints" / "last.ckpt").is_file():
            _run([sys.executable, "train.py", "fit", "--config", str(stage1 / "tb" / "config.yaml"),
                  "--config", "configs/taae/finetune_wavlm.yaml",
                  "--model.init_args.init_weights_from", str(stage1 / "checkpoints" / "last.ckpt"),
                  "--model.init_args.perceptual_loss.init_args.model_path", str(wavlm),
                  "--model.init_args.loss_weights.perceptual", str(weight), *_trainer(root, args.stage2_batches),
                  *data])
        rows[name] = _evaluate(root / "checkpoints" / "last.ckpt", out / "eval" / root.name, args)
    print(f"\n{args.preset}, mean over the files of {args.test}; WavLM: {wavlm}")
    print("| run | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for name, metrics in rows.items():
        print(f"| {name} | " + " | ".join(f"{metrics.get(m, float('nan')):.3f}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
