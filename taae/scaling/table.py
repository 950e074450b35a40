"""The study's one table: a row per rung and preset (``ladder.csv`` and ``ladder.md``), read back by fit and plot.

Columns: the rung (family, name, parameters, compute), its budget as requested and as spent, the preset and its
bitrate, and the mean / sample std / file count of every metric, plus the ``per_file.csv`` of its evaluation
(the fit bootstraps over those files). ``train_flops`` is the generator's training FLOPs over the whole run (the
models' own count, ``taae.models.flops``); the discriminator is fixed within a family and not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taae.eval.metrics import HIGHER_IS_BETTER, METRICS
from taae.scaling import files

RUNG_COLUMNS = ["family", "rung", "parameters", "train_flops_per_audio_second", "budget", "batches",
                "audio_seconds", "train_flops", "wall_seconds", "cpu_seconds", "budget_met"]
PRESET_COLUMNS = ["preset", "system", "bitrate"]
METRIC_COLUMNS = [f"{m}_{stat}" for m in METRICS for stat in ("mean", "std", "count")]
COLUMNS = [*RUNG_COLUMNS, *PRESET_COLUMNS, *METRIC_COLUMNS, "per_file"]
NUMERIC = {"parameters", "train_flops_per_audio_second", "batches", "audio_seconds", "train_flops", "wall_seconds",
           "cpu_seconds", "bitrate", *METRIC_COLUMNS}


def rows(result: dict) -> list[dict]:
    """Table rows of one rung's ``result.json`` (one per evaluated preset)."""
    spent = result["budget"]
    base = {"family": result["family"], "rung": result["name"], "parameters": result["parameters"],
            "train_flops_per_audio_second": result["train_flops_per_audio_second"],
            "budget": spent["requested"], "batches": spent["trained_batches"],
            "audio_seconds": spent["audio_seconds"], "train_flops": spent["train_flops"],
            "wall_seconds": spent["wall_seconds"], "cpu_seconds": spent.get("cpu_seconds"), "budget_met": spent["met"],
            "per_file": result["evaluation"]["per_file"]}
    out = []
    for preset, entry in result["presets"].items():
        row = {**base, "preset": preset, "system": entry.get("system"), "bitrate": entry.get("bitrate")}
        for metric, summary in (entry.get("metrics") or {}).items():
            for stat in ("mean", "std", "count"):
                row[f"{metric}_{stat}"] = summary.get(stat)
        out.append(row)
    return out


def write(out_dir: str | Path, results: list[dict]) -> dict[str, Path]:
    """Write ``ladder.csv`` and ``ladder.md`` for the finished rungs; returns their paths."""
    table = [row for result in results for row in rows(result)]
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / "ladder.csv", "markdown": out_dir / "ladder.md"}
    files.write_csv(paths["csv"], COLUMNS, table)
    files.write_text(paths["markdown"], markdown(table))
    return paths


def read(path: str | Path) -> list[dict]:
    """``ladder.csv`` back, numbers as floats (empty cells as NaN)."""
    table = files.read_csv(path, "ladder table")
    missing = [c for c in ("family", "rung", "parameters", "preset", "train_flops") if table and c not in table[0]]
    if missing:
        raise ValueError(f"{path}: not a ladder table (missing columns {missing})")
    for row in table:
        for key in NUMERIC & set(row):
            row[key] = float(row[key]) if row[key] not in ("", None) else math.nan
    return table


def _number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def markdown(table: list[dict]) -> str:
    """Rows grouped by preset, then family, by size: the metrics a reader compares across the ladder."""
    metrics = [m for m in METRICS if any(row.get(f"{m}_mean") is not None for row in table)]
    head = ["preset", "family", "rung", "parameters", "train GFLOP per audio s", "budget", "batches",
            "train PFLOP", "wall s", "CPU s",
            *[f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in metrics]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in sorted(table, key=lambda r: (r["preset"], r["family"], r["parameters"])):
        cells = [row["preset"], row["family"], row["rung"], f"{row['parameters'] / 1e6:.2f} M",
                 _number(row["train_flops_per_audio_second"] / 1e9, 2),
                 row["budget"] + ("" if row["budget_met"] else " (not met)"), str(row["batches"]),
                 _number(row["train_flops"] / 1e15, 3), _number(row["wall_seconds"], 0),
                 _number(row.get("cpu_seconds"), 0)]
        for m in metrics:
            mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
            cells.append(_number(mean) + (f" ± {_number(std)}" if std is not None else ""))
        lines.append("| " + " | ".join(cells) + " |")
    note = ("Metric cells: mean ± sample std over the test files. Compute is the generator's training FLOPs "
            "(taae.models.flops; the discriminator is not counted). CPU s: the training process's CPU time "
            "(data-loader workers not included), which a busy machine disturbs less than the wall-clock.")
    return "\n".join(lines) + "\n\n" + note + "\n"


def with_budget_met(table: list[dict]) -> tuple[list[dict], list[str]]:
    """The rows whose rung spent its whole budget, and ``family/rung`` of those left out.

    A law fitted across sizes assumes one budget for all: a rung stopped early by its guard (or diverged and
    stopped) is a point of another study, so fits and plots leave it out unless asked (``--include-unmet``).
    """
    met = [r.get("budget_met") in (True, "True") for r in table]  # "True" as read back from ladder.csv
    kept = [r for r, ok in zip(table, met) if ok]
    left_out = sorted({f"{r['family']}/{r['rung']}" for r, ok in zip(table, met) if not ok})
    return kept, left_out


X_AXES = {"parameters": "generator parameters", "train_flops": "generator training FLOPs"}
"""What a law can be fitted and drawn against: ``parameters`` (N) or the run's total ``train_flops`` (compute)."""


@dataclass
class Series:
    """One family's rungs at one preset: sizes on an axis and the per-file values of one metric."""

    family: str
    rungs: list[str]
    x: np.ndarray
    """(R,) sizes on the chosen axis."""
    per_file: np.ndarray
    """(R, F) metric per test file, NaN where a file failed or is missing; files paired across rungs."""
    files: list[str]


def series(table: list[dict], family: str, preset: str, metric: str, x: str = "parameters") -> Series:
    """The rows of ``family`` at ``preset``, by size, with ``metric`` read from each rung's ``per_file.csv``."""
    if x not in X_AXES:
        raise ValueError(f"x axis {x!r} is not one of {list(X_AXES)}")
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {list(METRICS)}")
    chosen = sorted((r for r in table if r["family"] == family and r["preset"] == preset), key=lambda r: r[x])
    if not chosen:
        have = sorted({(r["family"], r["preset"]) for r in table})
        raise ValueError(f"no rows for family {family!r} at preset {preset!r}; the table has {have}")
    values: list[dict[str, float]] = []
    for row in chosen:
        by_file = {}
        for line in files.read_csv(row["per_file"], f"per-file results of {family}/{row['rung']}"):
            if line["system"] == row["system"]:
                cell = line.get(metric, "")
                by_file[line["file"]] = float(cell) if cell not in ("", None) else math.nan
        values.append(by_file)
    names = sorted(set().union(*values))
    per_file = np.array([[v.get(n, math.nan) for n in names] for v in values], dtype=np.float64)
    per_file = per_file.reshape(len(chosen), -1)  # (R, F), also when no file could be read
    return Series(family=family, rungs=[r["rung"] for r in chosen], x=np.array([r[x] for r in chosen], float),
                  per_file=per_file, files=names)
