"""The scale recipe chosen by measurement: the ladder's loss mix against a balanced one, at equal steps.

    python benchmarks/scale_recipe.py --out runs/scale_recipe                      # every variant
    python benchmarks/scale_recipe.py --out runs/scale_recipe --variants recipe,balanced --steps 600
    python benchmarks/scale_recipe.py --out /tmp/smoke --steps 1 --smoke --variants balanced --data-root DIR

Every variant is a ladder recipe (``configs/taae/recipe.yaml`` or ``configs/rvqgan/recipe.yaml``, the files every
GPU rung composes) at the smallest CPU ladder rung (``configs/*/ladder/cpu/0.6m.yaml``), on the demo speech with
the CPU ladder's shared data settings (``configs/ladder/cpu_common.yaml``), plus a few overrides (the TAAE variants
all take the CPU rungs' smaller STFT discriminator and mel scales, ``CPU_D``). The discriminator
runs from the first step, as in the recipes; only the adversarial warm-up is shortened (``--warmup``, the same for
every variant) so that the adversarial terms act within a CPU budget. All variants train for the same number of
batches (equal steps, not equal time: the question is which loss mix codes the waveform, not which is cheapest),
then are scored on the held-back demo test split at 700 bps (RVQGAN: its 7-codebook preset, also 700 bps), beside
the last validation's ``val/sign_corr`` (≈ +1: the model codes x and −x alike; ≈ −1: it follows the waveform).

Finished variants keep ``--out/<variant>/result.json`` and are not retrained (a larger ``--steps`` resumes them from
their ``last.ckpt``); the table goes to
``--out/scale_recipe.md`` and ``scale_recipe.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import recipe_ablation as ablation  # noqa: E402  (its run-config writer: one place for a variant's trainer settings)

SHARED = ["configs/data/demo.yaml", "configs/trainer/cpu.yaml", "configs/ladder/cpu_common.yaml"]
TAAE = ["configs/taae/recipe.yaml", "configs/taae/ladder/cpu/0.6m.yaml", *SHARED]
RVQGAN = ["configs/rvqgan/recipe.yaml", "configs/rvqgan/ladder/cpu/25hz.yaml", "configs/rvqgan/ladder/cpu/0.6m.yaml",
          *SHARED]
BALANCER = {"class_path": "taae.training.balancer.GradientBalancer",
            "init_args": {"total_norm": 1.0, "ema_decay": 0.999, "per_item": True}}
# Each weight is the term's share of the gradient at the generator's output (the quickstart's shares, tiny.yaml).
BALANCED = {"balancer": BALANCER, "waveform_decay": 1.0,
            "loss_weights": {"mel": 0.7, "waveform": 0.3, "adv_gen": 0.1, "adv_feat": 0.2}}
# The CPU rungs' discriminator and mel scales (configs/taae/tiny.yaml): the recipe's five 32-filter STFT scales
# cost ~4x more per adversarial batch on a CPU, and its 32-sample mel scale half the mel loss's time. Every TAAE
# variant gets the same ones, so only the loss mix differs.
CPU_D = {"discriminator": {"class_path": "taae.models.discriminators.ComplexSTFTDiscriminator",
                           "init_args": {"fft_sizes": [1024, 633, 391], "filters": 8}},
         "mel_loss": {"class_path": "taae.losses.MultiScaleMelLoss",
                      "init_args": {"window_lengths": [64, 128, 256, 512, 1024, 2048],
                                    "n_mels": [10, 20, 40, 80, 160, 320]}}}
VARIANTS: dict[str, tuple[list[str], dict]] = {
    "recipe": (TAAE, CPU_D),                                   # 15·mel + decaying L1, unbalanced (today's file)
    "balanced": (TAAE, {**CPU_D, **BALANCED}),
    "balanced_adv_0.5": (TAAE, {**CPU_D, **BALANCED, "loss_weights": {"mel": 0.5, "waveform": 0.2, "adv_gen": 0.1,
                                                                       "adv_feat": 0.2}}),
    # The CPU recipe's generator learning rate (tiny.yaml): 10x the ladder's 1e-4, so a CPU budget shows more.
    "recipe_lr_1e-3": (TAAE, {**CPU_D, "optimizer_g": {"init_args": {"lr": 1.0e-3}}}),
    "balanced_lr_1e-3": (TAAE, {**CPU_D, **BALANCED, "optimizer_g": {"init_args": {"lr": 1.0e-3}}}),
    "rvqgan_recipe": (RVQGAN, {}),                             # DAC's lambdas, no waveform term
    "rvqgan_balanced": (RVQGAN, {**BALANCED, "loss_weights": {**BALANCED["loss_weights"], "vq/commitment": 0.25,
                                                              "vq/codebook": 1.0}}),
}


@dataclass
class Row:
    variant: str
    recipe: str
    batches: int
    val_mel: float | None
    val_si_sdr: float | None
    sign_corr: float | None
    si_sdr: float | None
    stoi: float | None
    pesq_wb: float | None
    mel: float | None
    preset: str
    wall_seconds: float


def _last(folder: Path, key: str) -> float | None:
    path = folder / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    values = [float(r[key]) for r in csv.DictReader(path.open()) if r.get(key)]
    return values[-1] if values else None


def run(args) -> list[Row]:
    variants = VARIANTS
    if args.variants:
        unknown = sorted(set(args.variants) - set(variants))
        if unknown:
            raise SystemExit(f"unknown variants {unknown}; known: {list(variants)}")
        variants = {k: variants[k] for k in args.variants}
    out = Path(args.out).resolve()
    rows = []
    for name, (base, overrides) in variants.items():
        folder = out / name
        done = folder / "result.json"
        if done.is_file():
            row = Row(**json.loads(done.read_text()))
            if row.batches >= args.steps:
                rows.append(row)
                continue
        folder.mkdir(parents=True, exist_ok=True)
        last = folder / "checkpoints" / "last.ckpt"
        overrides = {**overrides, "adversarial_warmup_steps": args.warmup, "discriminator_start_steps": 0}
        config = ablation._run_config(folder, overrides, 2 * args.steps, args.guard_seconds)
        extra = [f"--trainer.val_check_interval={min(args.val_every, args.steps)}"]
        extra += ablation.data_overrides(args.data_root)
        if args.smoke:  # seconds, same code path: a handful of validation items and test files
            extra += ["--data.init_args.max_val_items=2", "--data.init_args.batch_size=2",
                      "--trainer.log_every_n_steps=1"]
        if last.is_file():  # a larger --steps continues the finished run: the same curve, longer
            extra += [f"--ckpt_path={last}"]
        command = [sys.executable, "train.py", "fit", *[f"--config={c}" for c in [*base, str(config)]], *extra]
        print(f"{name}: {args.steps} batches" + (f" (resumed from {last})" if last.is_file() else ""), file=sys.stderr)
        t0 = time.perf_counter()
        with (folder / "train.log").open("w") as log:
            subprocess.run(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log,
                           stderr=subprocess.STDOUT, check=True)
        wall = time.perf_counter() - t0
        preset = "700bps"
        metrics = evaluate(folder / "checkpoints" / "last.ckpt", folder / "eval", preset, args)
        row = Row(name, base[0], args.steps, _last(folder, "val/mel"), _last(folder, "val/si_sdr"),
                  _last(folder, "val/sign_corr"), metrics["si_sdr"], metrics["stoi"], metrics["pesq_wb"],
                  metrics["mel"], preset, wall)
        done.write_text(json.dumps(asdict(row), indent=2))
        rows.append(row)
    return rows


def evaluate(checkpoint: Path, out: Path, preset: str, args) -> dict:
    from taae.eval.run import EvalConfig
    from taae.eval.run import evaluate as run_eval

    data = str(Path(args.data_root, "test")) if args.data_root else "data/demo/test"
    config = EvalConfig(data=data, out=str(out), checkpoint=str(checkpoint), presets=[preset],
                        references="none", workers=args.workers, mos=False, examples=0 if args.smoke else 2,
                        max_files=2 if args.smoke else None)
    system = next(s for s in run_eval(config).report.systems if s.kind == "codec")
    return {m: system.metrics[m].mean for m in ("si_sdr", "stoi", "pesq_wb", "mel")}


def table(rows: list[Row]) -> str:
    f = ablation.cell
    lines = ["| variant | recipe | batches | val sign_corr | val mel ↓ | SI-SDR ↑ | STOI ↑ | PESQ-WB ↑ | mel ↓ |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.variant} | `{r.recipe}` | {r.batches} | {f(r.sign_corr)} | {f(r.val_mel, 3)} | "
                     f"{f(r.si_sdr)} | {f(r.stoi, 3)} | {f(r.pesq_wb)} | {f(r.mel, 3)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the runs and the table")
    parser.add_argument("--variants", type=lambda s: [v for v in s.split(",") if v], default=None,
                        help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=600, help="batches per variant (each a D and a G step)")
    parser.add_argument("--warmup", type=int, default=100,
                        help="generator steps before the adversarial terms act (the discriminator runs from step 0)")
    parser.add_argument("--val-every", type=int, default=200, help="validation cadence in batches")
    parser.add_argument("--data-root", default=None,
                        help="a folder with train/ val/ test/ speech (default: the demo set, data/demo)")
    parser.add_argument("--guard-seconds", type=int, default=4 * 3600, help="max_time guard per run")
    parser.add_argument("--workers", type=int, default=2, help="metric processes during evaluation")
    parser.add_argument("--smoke", action="store_true", help="tiny validation and evaluation (the test suite's run)")
    args = parser.parse_args(argv)
    if args.steps % min(args.val_every, args.steps):  # last.ckpt is written at validations: the last must be the end
        parser.error(f"--steps {args.steps} is not a multiple of --val-every {args.val_every}: the scored checkpoint "
                     "would be the last validation's, not the end of training")
    os.chdir(ROOT)
    rows = run(args)
    text = table(rows)
    Path(args.out, "scale_recipe.md").write_text(text + "\n")
    Path(args.out, "scale_recipe.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(text)


if __name__ == "__main__":
    main()
