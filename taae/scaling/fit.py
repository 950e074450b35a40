"""Scaling-law fits with uncertainty: metric ≈ a·N^b + c (saturating) and metric ≈ a·N^b (plain power law).

Shape legend: R rungs (sizes), F test files, Bt bootstrap resamples.

Fitting: for a fixed exponent b both forms are linear in (a, c), so the least-squares problem is solved for
(a, c) exactly and searched over b alone (variable projection, Golub & Pereyra 1973): a grid over
``exponent_bounds`` and a golden-section refinement around the best grid point, vectorised over bootstrap
resamples. No starting guess is needed, the metric may have either sign (SI-SDR), and N is normalised by its
geometric mean so that the columns stay well conditioned; ``a`` is reported in the original units of N.

Uncertainty: the rungs are evaluated on the same test files, so the files are resampled with replacement (one
index set for all rungs, keeping the pairing), each rung's mean is recomputed and the law refitted; the interval
is the percentile interval of the ``num_boot`` refits. With three rungs the saturating law interpolates them, and
its interval is then the test-set noise alone, not the misfit of the law: more rungs test the form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_EXPONENT_BOUNDS = (-3.0, 3.0)
"""Exponents searched (ours): metric changes faster than N³ over a ladder would not be a power law."""
GRID_POINTS = 241
"""Grid over the exponent before the refinement (0.025 steps over the default bounds)."""
REFINE_ITERATIONS = 40
"""Golden-section steps inside the best grid cell: 0.618^40 of 0.05, far below any interval's width."""


@dataclass
class PowerLawFit:
    """metric ≈ a·N^b + c (``offset``) or a·N^b, with bootstrap intervals."""

    offset: bool
    a: float
    b: float
    c: float
    rmse: float
    """Root-mean-square residual of the fit to the rung means."""
    num_points: int
    at_bound: bool
    """The exponent sits on ``exponent_bounds``: the data do not pin it down (or are not a power law)."""
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Percentile interval per parameter (``a``, ``b``, and ``c`` with ``offset``); empty without per-file data."""
    level: float = 0.95
    num_files: int = 1
    num_boot: int = 0

    def __call__(self, n):
        return self.a * np.asarray(n, dtype=np.float64) ** self.b + self.c

    @property
    def form(self) -> str:
        return "a·N^b + c" if self.offset else "a·N^b"

    def describe(self) -> str:
        def part(name: str, value: float) -> str:
            lo_hi = self.ci.get(name)
            return f"{name} = {value:.4g}" + (f" [{lo_hi[0]:.4g}, {lo_hi[1]:.4g}]" if lo_hi else "")

        names = ["a", "b", "c"] if self.offset else ["a", "b"]
        text = ", ".join(part(n, getattr(self, n)) for n in names)
        level = f"{100 * self.level:g}% bootstrap over {self.num_files} files" if self.ci else "no interval"
        bound = "; exponent at its bound" if self.at_bound else ""
        return f"{self.form}: {text} ({level}; rmse {self.rmse:.3g}{bound})"


def _check(x: np.ndarray, y: np.ndarray, offset: bool) -> None:
    need = 3 if offset else 2
    if x.ndim != 1 or x.shape != y.shape[:1]:
        raise ValueError(f"sizes and values must pair up one to one, got {x.shape} and {y.shape}")
    if len(x) < need:
        raise ValueError(f"the {'a·N^b + c' if offset else 'a·N^b'} fit needs at least {need} sizes, got {len(x)}")
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(f"sizes must be positive and finite, got {x.tolist()}")
    if len(np.unique(x)) < need:
        raise ValueError(f"the fit needs {need} distinct sizes, got {sorted(set(x.tolist()))}")


def _solve(u: np.ndarray, y: np.ndarray, b: np.ndarray, offset: bool) -> tuple[np.ndarray, ...]:
    """Least-squares (a, c) for every exponent b at once, and the residual sum of squares.

    Shapes: u (R,) normalised log sizes, y (Bt, R) values, b (Bt, G) exponents → a, c, cost all (Bt, G).
    """
    p = np.exp(b[..., None] * u)  # (Bt, G, R)
    yy = y[:, None, :]
    if offset:
        # 2 × 2 normal equations in closed form; det = 0 only where p is constant (b = 0: a constant fits)
        n = u.shape[0]
        s_pp, s_p = (p * p).sum(-1), p.sum(-1)
        s_py, s_y = (p * yy).sum(-1), yy.sum(-1)
        det = n * s_pp - s_p**2
        flat = np.abs(det) <= 1e-12 * n * s_pp
        safe = np.where(flat, 1.0, det)
        a = np.where(flat, 0.0, (n * s_py - s_p * s_y) / safe)
        c = np.where(flat, s_y / n, (s_pp * s_y - s_p * s_py) / safe)
    else:
        a = (p * yy).sum(-1) / (p * p).sum(-1)
        c = np.zeros_like(a)
    cost = ((a[..., None] * p + c[..., None] - yy) ** 2).sum(-1)
    return a, c, cost


def _fit_many(x: np.ndarray, y: np.ndarray, offset: bool, bounds: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Fit every row of y (Bt, R): a grid over b, then golden-section refinement inside the best grid cell."""
    log_ref = float(np.mean(np.log(x)))
    u = np.log(x) - log_ref
    grid = np.linspace(bounds[0], bounds[1], GRID_POINTS)
    _, _, costs = _solve(u, y, np.broadcast_to(grid, (len(y), GRID_POINTS)), offset)
    best = costs.argmin(axis=1)
    step = grid[1] - grid[0]
    lo = np.clip(grid[best] - step, *bounds)[:, None]
    hi = np.clip(grid[best] + step, *bounds)[:, None]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(REFINE_ITERATIONS):
        m1, m2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        left = _solve(u, y, m1, offset)[2] < _solve(u, y, m2, offset)[2]
        hi, lo = np.where(left, m2, hi), np.where(left, lo, m1)
    b = (lo + hi) / 2  # (Bt, 1)
    a, c, cost = (v[:, 0] for v in _solve(u, y, b, offset))
    b = b[:, 0]
    return a * np.exp(-b * log_ref), b, c, cost  # a back in the original units of N


def fit_power_law(sizes, values, offset: bool = True,
                  exponent_bounds: tuple[float, float] = DEFAULT_EXPONENT_BOUNDS) -> PowerLawFit:
    """Least-squares fit of ``values ≈ a·sizes^b (+ c)`` (no interval; see ``bootstrap_fit``)."""
    x, y = np.asarray(sizes, dtype=np.float64), np.asarray(values, dtype=np.float64)
    _check(x, y, offset)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"values must be finite, got {y.tolist()}")
    lo, hi = exponent_bounds
    if not lo < hi:
        raise ValueError(f"exponent_bounds must be (low, high) with low < high, got {exponent_bounds}")
    a, b, c, cost = (float(v[0]) for v in _fit_many(x, y[None, :], offset, exponent_bounds))
    span = (hi - lo) / (GRID_POINTS - 1)
    return PowerLawFit(offset=offset, a=a, b=b, c=c if offset else 0.0, rmse=math.sqrt(cost / len(x)),
                       num_points=len(x), at_bound=min(b - lo, hi - b) < span / 2)


def rung_means(per_file: np.ndarray) -> np.ndarray:
    """(R, F) per-file values (NaN where a file failed) → (R,) means over the finite files."""
    per_file = np.asarray(per_file, dtype=np.float64)
    counts = np.isfinite(per_file).sum(axis=1)
    if np.any(counts == 0):
        raise ValueError(f"every rung needs at least one finite value, got counts {counts.tolist()}")
    return np.nanmean(per_file, axis=1)


def bootstrap_means(per_file: np.ndarray, num_boot: int, seed: int) -> np.ndarray:
    """(Bt, R) rung means over ``num_boot`` resamples of the files (one paired index set per resample)."""
    per_file = np.asarray(per_file, dtype=np.float64)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, per_file.shape[1], size=(num_boot, per_file.shape[1]))  # (Bt, F)
    sample = per_file[:, index]  # (R, Bt, F)
    finite = np.isfinite(sample)
    sums = np.where(finite, sample, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / finite.sum(axis=2)).T  # a resample with no finite file of a rung gives NaN: dropped later


def bootstrap_fit(sizes, per_file, offset: bool = True, num_boot: int = 1000, level: float = 0.95, seed: int = 0,
                  exponent_bounds: tuple[float, float] = DEFAULT_EXPONENT_BOUNDS) -> PowerLawFit:
    """Fit the rung means of ``per_file`` (R, F) and attach percentile intervals from a paired file bootstrap."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if num_boot < 1:
        raise ValueError(f"num_boot must be >= 1, got {num_boot}")
    per_file = np.asarray(per_file, dtype=np.float64)
    if per_file.ndim != 2:
        raise ValueError(f"per_file must be (rungs, files), got shape {per_file.shape}")
    fit = fit_power_law(sizes, rung_means(per_file), offset, exponent_bounds)
    fit.level, fit.num_files = level, per_file.shape[1]
    if per_file.shape[1] < 2:
        return fit
    means = bootstrap_means(per_file, num_boot, seed)  # (Bt, R)
    means = means[np.all(np.isfinite(means), axis=1)]
    if not len(means):
        return fit
    a, b, c, _ = _fit_many(np.asarray(sizes, dtype=np.float64), means, offset, exponent_bounds)
    draws = np.stack([a, b, c], axis=1)
    tail = 100 * (1 - level) / 2
    names = ["a", "b", "c"] if offset else ["a", "b"]
    fit.ci = {n: (float(np.percentile(draws[:, i], tail)), float(np.percentile(draws[:, i], 100 - tail)))
              for i, n in enumerate(names)}
    fit.num_boot = len(draws)
    return fit
