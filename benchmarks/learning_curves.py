"""Learning curves at fixed CPU time: quality of the quickstart recipe and its design variants per CPU minute.

    python benchmarks/learning_curves.py --out runs/curves                             # every variant, hours
    python benchmarks/learning_curves.py --out runs/curves --variants patch,istft --minutes 2.5,5,10,20
    python benchmarks/learning_curves.py --out runs/curves --smoke                     # seconds: plumbing only

A variant is the quickstart (configs/taae/tiny.yaml + demo data + CPU trainer + configs/taae/quickstart.yaml, as
the Makefile composes them) plus overrides of ``model.init_args``. Each trains in its own process with one torch
thread and its data loading in the same process (``data.num_workers: 0``), at most ``--parallel`` at once, niced;
``taae.training.cpu_time.CpuTimeCheckpoints`` saves a checkpoint each time the process's CPU time passes one of
``--minutes``, so a busy machine changes how long a curve takes, not what it shows. No validation runs during
training (its CPU would count against the variant); every checkpoint is evaluated afterwards on the demo test split
at 700 bps, and Codec 2 700C on the same files gives the horizontal line.

Finished runs and evaluations are kept under ``--out`` and not redone (``--minutes`` may grow a variant's curve
only by training it again). Writes ``--figure`` (PNG: one panel per metric, CPU minutes on a log axis) and the same
numbers as CSV beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ["configs/taae/tiny.yaml", "configs/data/demo.yaml", "configs/trainer/cpu.yaml",
              "configs/taae/quickstart.yaml"]


def _config(**values) -> dict:
    return {"generator": {"init_args": {"config": values}}}


PREEMPHASIS = {"class_path": "taae.losses.PreEmphasisL1Loss", "init_args": {"coefficient": 0.95}}
# name -> overrides of model.init_args, nested as in the YAML. "recipe" is configs/taae/tiny.yaml as it stands.
VARIANTS: dict[str, dict] = {
    "recipe": {},
    "patch": _config(head="patch"),  # the paper's head (tiny.yaml's before the curves chose the iSTFT head)
    "istft": _config(head="istft"),
    "overlap_add": _config(head="overlap_add"),
    # decoder-heavy at about equal parameters: 1 + 1 encoder layers, 3 + 3 decoder layers (recipe: 2 + 2 each)
    "decoder_heavy": _config(depths=[1, 1], decoder_depths=[3, 3]),
    "istft_decoder_heavy": _config(head="istft", depths=[1, 1], decoder_depths=[3, 3]),
    "istft_preemphasis": {**_config(head="istft"), "waveform_loss": PREEMPHASIS},
    "preemphasis": {"waveform_loss": PREEMPHASIS},
    # the CPU-sized discriminator of tiny.yaml from the first batch (its cost is inside the CPU budget)
    "istft_discriminator": {**_config(head="istft"), "discriminator_start_steps": 0, "adversarial_warmup_steps": 0},
}
METRICS = ("si_sdr", "stoi", "pesq_wb", "mel", "noise_floor", "mos")
TITLES = {"si_sdr": "SI-SDR (dB) ↑", "stoi": "STOI ↑", "pesq_wb": "PESQ-WB ↑", "mel": "mel distance ↓",
          "noise_floor": "noise floor (dB below speech) ↑", "mos": "DNSMOS ↑"}
REFERENCE = "codec2_700C"


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def train_command(name: str, folder: Path, minutes: list[float], data_root: str | None) -> list[str]:
    """The ``train.py fit`` command of one variant, its last ``--config`` written to ``folder/variant.yaml``."""
    overrides = {
        "model": {"init_args": VARIANTS[name]},
        "data": {"init_args": {"num_workers": 0}},
        "trainer": {"max_steps": -1, "max_time": None, "limit_val_batches": 0, "enable_checkpointing": False,
                    "enable_progress_bar": False, "default_root_dir": str(folder),
                    "logger": [{"class_path": "lightning.pytorch.loggers.CSVLogger",
                                "init_args": {"save_dir": str(folder), "name": "csv", "version": ""}}],
                    "callbacks": [{"class_path": "taae.training.callbacks.TorchThreads",
                                   "init_args": {"num_threads": 1}},
                                  {"class_path": "taae.training.cpu_time.CpuTimeCheckpoints",
                                   "init_args": {"minutes": minutes, "dirpath": str(folder / "checkpoints")}}]},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "variant.yaml"
    path.write_text(yaml.safe_dump(overrides, sort_keys=False))
    data = [] if data_root is None else [f"--data.init_args.{s}={Path(data_root, s)}" for s in ("train", "val", "test")]
    return [sys.executable, "train.py", "fit", *[f"--config={c}" for c in [*QUICKSTART, str(path)]], *data]


def _saved(folder: Path) -> list[dict]:
    path = folder / "checkpoints" / "cpu_time.json"
    return json.loads(path.read_text()) if path.is_file() else []


def train_all(names: list[str], out: Path, minutes: list[float], parallel: int, data_root: str | None) -> None:
    """Train every variant whose run lacks a checkpoint at the last of ``minutes``, ``parallel`` at a time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore"}
    queue = [n for n in names if not any(s["minutes"] == minutes[-1] for s in _saved(out / n))]
    running: dict[str, subprocess.Popen] = {}
    while queue or running:
        while queue and len(running) < parallel:
            name = queue.pop(0)
            folder = out / name
            command = ["nice", "-n", "10", *train_command(name, folder, minutes, data_root)]
            print(f"{name}: training to {minutes[-1]:g} CPU minutes", file=sys.stderr, flush=True)
            log = (folder / "train.log").open("w")
            running[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                if proc.returncode:
                    raise SystemExit(f"{name}: training failed ({proc.returncode}), see {out / name / 'train.log'}")
        time.sleep(0.5)


def _scores(report: dict, kind: str, name: str | None = None) -> dict:
    system = next(s for s in report["systems"].values() if s["kind"] == kind and (name is None or s["name"] == name))
    return {m: system["metrics"][m]["mean"] for m in METRICS if m in system["metrics"]}


def evaluate_checkpoint(checkpoint: Path, out: Path, data: str, max_files: int | None, mos: bool) -> dict:
    """700 bps scores of one checkpoint (cached in ``out/report.json``)."""
    if not (out / "report.json").is_file():
        from taae.eval.run import EvalConfig, evaluate

        evaluate(EvalConfig(data=data, out=str(out), checkpoint=str(checkpoint), presets=["700bps"],
                            references="none", workers=1, mos=mos, examples=0, max_files=max_files))
    return _scores(json.loads((out / "report.json").read_text()), "codec")


def evaluate_reference(out: Path, data: str, max_files: int | None, mos: bool) -> dict:
    if not (out / "report.json").is_file():
        from taae.eval.run import EvalConfig, evaluate

        evaluate(EvalConfig(data=data, out=str(out), references="codec2", workers=1, mos=mos, examples=0,
                            max_files=max_files))
    return _scores(json.loads((out / "report.json").read_text()), "reference", REFERENCE)


def collect(names: list[str], out: Path, data: str, max_files: int | None, mos: bool) -> list[dict]:
    rows = []
    for name in names:
        for saved in _saved(out / name):
            folder = out / name / "eval" / saved["checkpoint"].removesuffix(".ckpt")
            scores = evaluate_checkpoint(out / name / "checkpoints" / saved["checkpoint"], folder, data, max_files, mos)
            rows.append({"variant": name, "cpu_minutes": saved["minutes"], "batches": saved["batches"],
                         "wall_seconds": saved["wall_seconds"], **scores})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def write_csv(rows: list[dict], reference: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = ["variant", "cpu_minutes", "batches", "wall_seconds", *METRICS]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        writer.writerow({"variant": REFERENCE, **reference})


def plot(rows: list[dict], reference: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(m in r and r[m] is not None for r in rows)]
    columns = min(3, len(metrics))
    rows_of_panels = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(4.2 * columns, 3.3 * rows_of_panels), squeeze=False)
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    minutes = sorted({r["cpu_minutes"] for r in rows})
    for ax, metric in zip(axes.flat, metrics):
        values = []
        for variant in variants:
            points = [(r["cpu_minutes"], r.get(metric)) for r in rows if r["variant"] == variant]
            points = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
            values += [y for _, y in points]
            if points:
                ax.plot(*zip(*points), marker="o", label=variant)
        title = TITLES[metric]
        value = reference.get(metric)
        if value is not None and math.isfinite(value):
            span = (max(values) - min(values)) if values else 0.0
            if values and not min(values) - 2 * span <= value <= max(values) + 2 * span:
                title += f"\n(Codec 2 700C: {value:.2f}, off the axis)"  # a line there would flatten the curves
            else:
                ax.axhline(value, color="black", linestyle="--", linewidth=1, label="Codec 2 700C")
        ax.set_xscale("log")
        ax.set_xticks(minutes, [f"{m:g}" for m in minutes])
        ax.minorticks_off()
        ax.set_xlabel("training CPU minutes (1 thread)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    axes.flat[0].legend(handles.values(), handles.keys(), fontsize=8)
    fig.suptitle("TAAE tiny at 700 bps on the demo test split, by CPU time of training", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict], reference: dict) -> str:
    def cell(v, digits):
        return "—" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"

    digits = {"si_sdr": 2, "stoi": 3, "pesq_wb": 3, "mel": 3, "noise_floor": 1, "mos": 2}
    lines = ["| variant | CPU min | batches | " + " | ".join(TITLES[m] for m in METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for r in [*rows, {"variant": REFERENCE, "cpu_minutes": None, "batches": None, **reference}]:
        minutes = "—" if r["cpu_minutes"] is None else f"{r['cpu_minutes']:g}"
        batches = "—" if r["batches"] is None else str(r["batches"])
        lines.append(f"| {r['variant']} | {minutes} | {batches} | "
                     + " | ".join(cell(r.get(m), digits[m]) for m in METRICS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/curves", help="folder for the runs and their evaluations")
    parser.add_argument("--variants", type=lambda s: [v for v in s.split(",") if v], default=None,
                        help=f"comma-separated subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--minutes", type=lambda s: [float(v) for v in s.split(",")], default=[2.5, 5, 10, 20, 40],
                        help="CPU-time checkpoints in minutes (default 2.5,5,10,20,40)")
    parser.add_argument("--parallel", type=int, default=2, help="training processes at once (one thread each)")
    parser.add_argument("--data-root", default=None, help="a folder with train/ val/ test/ (default data/demo)")
    parser.add_argument("--max-files", type=int, default=None, help="test files to score (default: all)")
    parser.add_argument("--no-mos", action="store_true", help="leave DNSMOS out")
    parser.add_argument("--train-only", action="store_true", help="train, then stop before evaluating")
    parser.add_argument("--eval-only", action="store_true",
                        help="score the checkpoints saved so far (while training runs), train nothing")
    parser.add_argument("--figure", default="docs/figures/learning_curves.png", help="PNG; the CSV goes beside it")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds: patch and istft to 0.02 and 0.04 CPU minutes, two test files, no DNSMOS")
    args = parser.parse_args(argv)
    if args.smoke:
        args.variants = args.variants or ["patch", "istft"]
        args.minutes, args.max_files, args.no_mos = [0.02, 0.04], 2, True
    names = args.variants or list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    out = Path(args.out).resolve()
    figure = Path(args.figure).resolve()
    data_root = str(Path(args.data_root).resolve()) if args.data_root else None
    os.chdir(ROOT)
    if not args.eval_only:
        train_all(names, out, args.minutes, args.parallel, data_root)
    if args.train_only:
        return
    from taae.eval.metrics import optional_metrics_status

    mos = not args.no_mos and "mos" in optional_metrics_status(True)[0]
    data = str(Path(data_root or "data/demo", "test"))
    rows = collect(names, out, data, args.max_files, mos)
    reference = evaluate_reference(out / "eval_codec2", data, args.max_files, mos)
    write_csv(rows, reference, figure.with_suffix(".csv"))
    plot(rows, reference, figure)
    print(table(rows, reference))
    print(f"wrote {figure} and {figure.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
