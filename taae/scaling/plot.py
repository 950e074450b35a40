"""The scaling plot: a metric against parameters and against training compute, every family, with fits.

    python -m taae.scaling plot --table runs/ladder/cpu_mini/ladder.csv --metric mel --preset 700bps

Writes ``<stem>.png`` and ``<stem>.csv`` (the plotted points: rung means with their bootstrap intervals, and the
fitted law at each rung). The law is a·N^b + c with three or more rungs, a·N^b with two (``taae.scaling.fit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taae.eval.metrics import HIGHER_IS_BETTER
from taae.io.atomic import write_with
from taae.scaling import files
from taae.scaling.fit import PowerLawFit, bootstrap_fit, bootstrap_means, rung_means
from taae.scaling.table import X_AXES, Series, series

CURVE_POINTS = 100
"""Points along each drawn law."""


@dataclass
class PlotSettings:
    metric: str = "mel"
    preset: str = "700bps"
    num_boot: int = 1000
    level: float = 0.95
    seed: int = 0
    dpi: int = 150


def best_fit(s: Series, settings: PlotSettings) -> PowerLawFit | None:
    """The saturating law with three or more distinct sizes, the plain one with two, none with one."""
    distinct = len(np.unique(s.x))
    if distinct < 2:
        return None
    return bootstrap_fit(s.x, s.per_file, offset=distinct >= 3, num_boot=settings.num_boot, level=settings.level,
                         seed=settings.seed)


def _interval(s: Series, settings: PlotSettings) -> tuple[np.ndarray, np.ndarray]:
    draws = bootstrap_means(s.per_file, settings.num_boot, settings.seed)  # (Bt, R)
    tail = 100 * (1 - settings.level) / 2
    return np.nanpercentile(draws, tail, axis=0), np.nanpercentile(draws, 100 - tail, axis=0)


def plot(table: list[dict], out: str | Path, settings: PlotSettings | None = None) -> dict[str, Path]:
    """Draw ``settings.metric`` at ``settings.preset`` for every family in ``table``; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    settings = settings or PlotSettings()
    families = sorted({r["family"] for r in table if r["preset"] == settings.preset})
    if not families:
        raise ValueError(f"the table has no rows at preset {settings.preset!r}")
    out = Path(out)
    fig, axes = plt.subplots(1, len(X_AXES), figsize=(6 * len(X_AXES), 4.5), squeeze=False)
    points = []
    for ax, axis in zip(axes[0], X_AXES):
        for k, family in enumerate(families):
            s = series(table, family, settings.preset, settings.metric, axis)
            means = rung_means(s.per_file)
            lo, hi = _interval(s, settings)
            color = f"C{k}"
            ax.errorbar(s.x, means, yerr=[means - lo, hi - means], fmt="o", color=color, capsize=3, label=family)
            fit = best_fit(s, settings)
            if fit is not None:
                grid = np.geomspace(s.x.min(), s.x.max(), CURVE_POINTS)
                label = f"{family}: {fit.form}, b = {fit.b:.3f}"
                if "b" in fit.ci:
                    label += f" [{fit.ci['b'][0]:.3f}, {fit.ci['b'][1]:.3f}]"
                ax.plot(grid, fit(grid), "-", color=color, alpha=0.7, label=label)
            for i, rung in enumerate(s.rungs):
                points.append({"axis": axis, "family": family, "rung": rung, "x": s.x[i], "mean": means[i],
                               "ci_low": lo[i], "ci_high": hi[i], "files": int(np.isfinite(s.per_file[i]).sum()),
                               "fit": float(fit(s.x[i])) if fit is not None else None,
                               "fit_form": fit.form if fit is not None else None})
        ax.set_xscale("log")
        ax.set_xlabel(X_AXES[axis])
        arrow = "↑" if HIGHER_IS_BETTER[settings.metric] else "↓"
        ax.set_ylabel(f"{settings.metric} {arrow} at {settings.preset}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{settings.metric} against size and compute ({100 * settings.level:g}% bootstrap intervals over "
                 "test files)")
    fig.tight_layout()
    paths = {"png": out.with_suffix(".png"), "csv": out.with_suffix(".csv")}
    write_with(paths["png"], lambda tmp: fig.savefig(tmp, format="png", dpi=settings.dpi))
    plt.close(fig)
    columns = ["axis", "family", "rung", "x", "mean", "ci_low", "ci_high", "files", "fit", "fit_form"]
    files.write_csv(paths["csv"], columns, points)
    return paths
