"""The quickstart recipe ablation and the family comparison: every variant trained for the same CPU time, one table.

    python benchmarks/recipe_ablation.py --out runs/ablation                       # every variant (hours on 2 cores)
    python benchmarks/recipe_ablation.py --out runs/ablation --variants quickstart,no_balancer
    python benchmarks/recipe_ablation.py --out runs/ablation --calibrate-only      # time every variant and stop

A TAAE variant is the quickstart (configs/taae/tiny.yaml + demo data + CPU trainer + configs/taae/quickstart.yaml,
as the Makefile composes it) plus a few overrides; the ``rvqgan_*`` variants are the RVQGAN tiny quickstart
(configs/rvqgan/tiny.yaml + configs/rvqgan/quickstart.yaml) plus overrides, so both families share data, budget
and evaluation.

Equal wall-clock is made reproducible rather than measured after the fact: every variant's seconds per batch are
timed side by side in one calibration pass (reconstruction-only batches and, where a discriminator would run,
adversarial ones), and a variant gets the batches that fit in ``--budget`` *reference batches*, the TAAE
quickstart's own. Only ratios of timings enter, so a busy machine gives the same step counts as a quiet one; each
run is then bounded by steps, its wall-clock guard far away. The default budget, 1000 reference batches, is a third
of the quickstart's (about 3 minutes of one-thread training per variant on a quiet machine).

Finished variants keep their runs under ``--out/<variant>/`` and are not retrained. Each is evaluated on the demo
test split at its family's preset nearest 700 bps from above (TAAE 700 bps, RVQGAN 800 bps); the table (variant,
batches, val mel, SI-SDR, STOI, PESQ-WB, mel) goes to ``--out/ablation.md`` and ``ablation.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TAAE = ["configs/taae/tiny.yaml", "configs/data/demo.yaml", "configs/trainer/cpu.yaml",
        "configs/taae/quickstart.yaml"]
RVQGAN = ["configs/rvqgan/tiny.yaml", "configs/data/demo.yaml", "configs/trainer/cpu.yaml",
          "configs/rvqgan/quickstart.yaml"]

FULL_MEL = {"class_path": "taae.losses.MultiScaleMelLoss",
            "init_args": {"window_lengths": [32, 64, 128, 256, 512, 1024, 2048],
                          "n_mels": [5, 10, 20, 40, 80, 160, 320]}}
OLD_RECIPE = {  # the quickstart before this ablation: mel 15 + waveform 1 decaying 0.999/step, GAN from batch 1500
    "balancer": None, "mel_loss": FULL_MEL,
    "loss_weights": {"mel": 15.0, "waveform": 1.0, "adv_gen": 1.0, "adv_feat": 5.0},
    "waveform_decay": 0.999, "discriminator_start_steps": 1500, "adversarial_warmup_steps": 1600,
}
# name -> (base composition, overrides of model.init_args, nested like the YAML). "quickstart" is the recipe itself.
VARIANTS: dict[str, tuple[list[str], dict]] = {
    "quickstart": (TAAE, {}),
    "old_recipe": (TAAE, OLD_RECIPE),
    "old_recipe_waveform_x1000": (TAAE, {**OLD_RECIPE, "waveform_decay": 1.0,
                                         "loss_weights": {**OLD_RECIPE["loss_weights"], "waveform": 1000.0}}),
    "no_balancer": (TAAE, {"balancer": None}),  # the same weights unbalanced: the waveform's share collapses
    "waveform_share_0.15": (TAAE, {"loss_weights": {"mel": 0.85, "waveform": 0.15}}),
    "waveform_share_0.5": (TAAE, {"loss_weights": {"mel": 0.5, "waveform": 0.5}}),
    "waveform_decaying": (TAAE, {"waveform_decay": 0.999}),
    "complex_stft_waveform": (TAAE, {"waveform_loss": {"class_path": "taae.losses.CompressedComplexSTFTLoss"}}),
    "discriminator_from_500": (TAAE, {"discriminator_start_steps": 500, "adversarial_warmup_steps": 600}),
    "full_mel": (TAAE, {"mel_loss": FULL_MEL}),
    "lr_2e-3": (TAAE, {"optimizer_g": {"init_args": {"lr": 2.0e-3}}}),
    # cosine decay to the end of the variant's own budget ("T_max": BUDGET is replaced by its batches), with EMA weights
    "cosine_lr_ema": (TAAE, {"ema_decay": 0.999, "scheduler_g": {
        "class_path": "torch.optim.lr_scheduler.CosineAnnealingLR",
        "init_args": {"T_max": "BUDGET", "eta_min": 1.0e-5}}}),
    "fixed_levels": (TAAE, {"generator": {"init_args": {"config": {"random_levels": None}}}}),
    "wider": (TAAE, {"generator": {"init_args": {"config": {"stem_width": 256, "widths": [256, 256]}}}}),
    # the cost of causality (configs/taae/causal_tiny.yaml's model settings): left-only windows, causal convs
    "causal": (TAAE, {"generator": {"init_args": {"config": {"window": [63, 0], "causal": True}}}}),
    "deeper": (TAAE, {"generator": {"init_args": {"config": {"depths": [4, 4]}}}}),
    "rvqgan_quickstart": (RVQGAN, {}),
    "rvqgan_dac_weights": (RVQGAN, {"balancer": None, "mel_loss": FULL_MEL, "loss_weights": {
        "mel": 15.0, "adv_feat": 2.0, "adv_gen": 1.0, "vq/commitment": 0.25, "vq/codebook": 1.0}}),
}


@dataclass
class Row:
    variant: str
    batches: int
    recon_batches: int
    seconds_per_batch: float
    """Calibrated seconds per reconstruction-phase batch (this run's machine; only ratios set the budget)."""
    val_mel: float | None
    si_sdr: float | None
    stoi: float | None
    pesq_wb: float | None
    mel: float | None
    preset: str
    wall_seconds: float | None


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _model_args(base: list[str], overrides: dict) -> dict:
    merged: dict = {}
    for path in base:
        merged = _merge(merged, (yaml.safe_load(open(path)) or {}).get("model", {}).get("init_args", {}))
    return _merge(merged, overrides)


def _fill_budget(overrides, batches: int):
    """``"BUDGET"`` anywhere in the overrides becomes the variant's batch count (a schedule's length)."""
    if isinstance(overrides, dict):
        return {k: _fill_budget(v, batches) for k, v in overrides.items()}
    return batches if overrides == "BUDGET" else overrides


def _run_config(folder: Path, overrides: dict, max_steps: int, guard_seconds: int) -> Path:
    """The variant's overrides plus its step budget and run folder, as the last ``--config`` file."""
    hours, rest = divmod(guard_seconds, 3600)
    config = {
        "model": {"init_args": overrides},
        "trainer": {"max_steps": max_steps, "max_time": f"00:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}",
                    "default_root_dir": str(folder), "enable_progress_bar": False,
                    "logger": [{"class_path": "lightning.pytorch.loggers.CSVLogger",
                                "init_args": {"save_dir": str(folder), "name": "csv", "version": ""}}],
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(folder / "checkpoints"), "filename": "last",
                                                 "enable_version_counter": False}}]},
    }
    path = folder / "variant.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def data_overrides(root: str | None) -> list[str]:
    """Command-line overrides that point every split at ``root``/{train,val,test} (default: the demo set's)."""
    if not root:
        return []
    return [f"--data.init_args.{split}={Path(root, split)}" for split in ("train", "val", "test")]


def calibrate(variants: dict[str, tuple[list[str], dict]], folder: Path, batches: int = 8, rounds: int = 5,
              data_args: tuple[str, ...] = ()) -> dict:
    """Seconds per batch {recon, adv} of each variant, timed side by side on synthetic batches.

    Rounds interleave the variants, so a change of load hits them all alike. Load only ever adds time, so each
    variant keeps its fastest round (the median batch within a round): on a busy machine the median over rounds
    still scattered ±20% between variants of identical compute, the minimum ±5%.
    """
    import lightning as L
    import torch

    from taae.training.cli import TaaeCLI

    class Timer(L.Callback):
        def __init__(self):
            self.times: list[float] = []

        def on_train_batch_start(self, *args):
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args):
            self.times.append(time.perf_counter() - self.start)

    built = {}
    for name, (base, overrides) in variants.items():
        path = folder / name / "calibrate.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"model": {"init_args": _fill_budget(overrides, 1000)}}))
        cli = TaaeCLI(args=[f"--config={c}" for c in [*base, str(path)]] + ["--trainer.logger=false", *data_args],
                      run=False)
        built[name] = (cli.model, cli.datamodule)
    times: dict[str, dict[str, list[float]]] = {n: {"recon": [], "adv": []} for n in variants}
    for _ in range(rounds):
        for name, (module, data) in built.items():
            wav = torch.randn(data.batch_size, 1, data.segment_length) * 0.1
            for phase in ("recon", "adv"):
                if phase == "adv" and module.discriminator is None:
                    continue
                saved = module.discriminator_start_steps, module.adversarial_warmup_steps
                start = 0 if phase == "adv" else 10**9
                module.discriminator_start_steps = module.adversarial_warmup_steps = start
                module.generator_steps.zero_()
                timer = Timer()
                L.Trainer(accelerator="cpu", max_steps=2 * (batches + 1), logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                          limit_val_batches=0, callbacks=[timer]).fit(module, [wav] * (batches + 1))
                module.discriminator_start_steps, module.adversarial_warmup_steps = saved
                times[name][phase].append(statistics.median(timer.times[1:]))
    return {n: {p: min(v) if v else None for p, v in t.items()} for n, t in times.items()}


COMPUTE_KEYS = ("generator", "discriminator", "mel_loss", "waveform_loss", "balancer", "ema_decay")
"""The model.init_args that set a batch's cost; loss weights, schedules and the discriminator's start do not."""


def pool_identical(calibration: dict, variants: dict[str, tuple[list[str], dict]]) -> dict:
    """Variants of identical compute share their fastest timing.

    Timed alone, two variants that differ only in a loss weight scattered by ±25% on a busy machine, enough to
    hand one of them a third more batches; pooled, each compute gets the minimum over all its variants' rounds.
    """
    def key(name):
        base, overrides = variants[name]
        args = _model_args(base, overrides)
        return json.dumps([base, *[args.get(k) for k in COMPUTE_KEYS]], sort_keys=True, default=str)

    groups: dict[str, list[str]] = {}
    for name in calibration:
        if name in variants:
            groups.setdefault(key(name), []).append(name)
    pooled = dict(calibration)
    for names in groups.values():
        for phase in ("recon", "adv"):
            values = [calibration[n][phase] for n in names if calibration[n][phase] is not None]
            for n in names:
                pooled[n] = {**pooled[n], phase: min(values) if values else None}
    return pooled


def budget_batches(budget: float, reference: float, recon: float, adv: float | None, start: int) -> tuple[int, int]:
    """Batches (total, reconstruction-only) that fit ``budget`` reference batches of ``reference`` seconds each."""
    seconds = budget * reference
    recon_batches = min(start, math.floor(seconds / recon))
    if adv is None or recon_batches < start:
        return recon_batches, recon_batches
    return recon_batches + math.floor((seconds - recon_batches * recon) / adv), recon_batches


def _last_val_mel(folder: Path) -> float | None:
    path = folder / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    values = [float(r["val/mel"]) for r in csv.DictReader(path.open()) if r.get("val/mel")]
    return values[-1] if values else None


def _evaluate(checkpoint: Path, out: Path, preset: str, workers: int, data_root: str | None = None) -> dict:
    from taae.eval.run import EvalConfig, evaluate

    data = str(Path(data_root or "data/demo", "test"))
    result = evaluate(EvalConfig(data=data, out=str(out), checkpoint=str(checkpoint),
                                 presets=[preset], references="none", workers=workers, mos=False, examples=2))
    system = next(s for s in result.report.systems if s.kind == "codec")
    return {m: system.metrics[m].mean for m in ("si_sdr", "stoi", "pesq_wb", "mel")}


def run(args) -> list[Row]:
    variants = VARIANTS
    if args.variants:
        unknown = sorted(set(args.variants) - set(variants))
        if unknown:
            raise SystemExit(f"unknown variants {unknown}; known: {list(variants)}")
        variants = {k: variants[k] for k in args.variants}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    calibration_path = out / "calibration.json"
    calibration = json.loads(calibration_path.read_text()) if calibration_path.is_file() else {}
    wanted = {k: v for k, v in {"quickstart": VARIANTS["quickstart"], **variants}.items() if k not in calibration}
    if wanted:
        print(f"calibrating {list(wanted)} ...", file=sys.stderr)
        calibration.update(calibrate(wanted, out, batches=args.calibrate_batches, rounds=args.rounds,
                                     data_args=data_overrides(args.data_root)))
        calibration_path.write_text(json.dumps(calibration, indent=2))
    calibration = pool_identical(calibration, VARIANTS)
    if args.calibrate_only:
        print(json.dumps(calibration, indent=2))
        return []
    reference = calibration["quickstart"]["recon"]

    rows = []
    for name, (base, overrides) in variants.items():
        folder = out / name
        done = folder / "result.json"
        if done.is_file():
            rows.append(Row(**json.loads(done.read_text())))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        start = int(_model_args(base, overrides).get("discriminator_start_steps", 0))
        cal = calibration[name]
        total, recon = budget_batches(args.budget, reference, cal["recon"], cal["adv"], start)
        config = _run_config(folder, _fill_budget(overrides, total), 2 * total, args.guard_seconds)
        command = [sys.executable, "train.py", "fit", *[f"--config={c}" for c in [*base, str(config)]],
                   *data_overrides(args.data_root)]
        print(f"{name}: {total} batches ({recon} reconstruction-only)", file=sys.stderr)
        t0 = time.perf_counter()
        with (folder / "train.log").open("w") as log:
            subprocess.run(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=log,
                           stderr=subprocess.STDOUT, check=True)
        wall = time.perf_counter() - t0
        preset = "700bps" if base is TAAE else "800bps"
        metrics = _evaluate(folder / "checkpoints" / "last.ckpt", folder / "eval", preset, args.workers, args.data_root)
        row = Row(name, total, recon, cal["recon"], _last_val_mel(folder), metrics["si_sdr"], metrics["stoi"],
                  metrics["pesq_wb"], metrics["mel"], preset, wall)
        done.write_text(json.dumps(asdict(row), indent=2))
        rows.append(row)
    return rows


def cell(v: float | None, digits: int = 2) -> str:
    """A table cell: the value to ``digits`` places, or a dash where the run gave none (or a non-finite one)."""
    return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def table(rows: list[Row]) -> str:
    f = cell
    lines = ["| variant | preset | batches (recon-only) | val mel ↓ | SI-SDR ↑ | STOI ↑ | PESQ-WB ↑ | mel ↓ |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.variant} | {r.preset} | {r.batches} ({r.recon_batches}) | {f(r.val_mel, 3)} | "
                     f"{f(r.si_sdr)} | {f(r.stoi, 3)} | {f(r.pesq_wb)} | {f(r.mel, 3)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the runs, calibration.json and the table")
    parser.add_argument("--variants", type=lambda s: [v for v in s.split(",") if v], default=None,
                        help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--budget", type=float, default=1000,
                        help="reference batches (the TAAE quickstart's); default 1000, a third of the quickstart's")
    parser.add_argument("--rounds", type=int, default=3, help="calibration rounds (each variant keeps its fastest)")
    parser.add_argument("--calibrate-only", action="store_true", help="time every variant and stop")
    parser.add_argument("--calibrate-batches", type=int, default=8, help="timed batches per variant and round")
    parser.add_argument("--guard-seconds", type=int, default=4 * 3600, help="max_time guard per run")
    parser.add_argument("--workers", type=int, default=2, help="metric processes during evaluation")
    parser.add_argument("--data-root", default=None,
                        help="a folder with train/ val/ test/ speech (default: the demo set, data/demo)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    rows = run(args)
    if args.calibrate_only:
        return
    text = table(rows)
    (Path(args.out) / "ablation.md").write_text(text + "\n")
    (Path(args.out) / "ablation.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    print(text)


if __name__ == "__main__":
    main()
