"""The scaling ladder: parameter counts and compute per size, and a power-law fit of a metric against size.

    python -m taae.scaling.ladder                                   # sizes of configs/taae/ladder/*.yaml
    python -m taae.scaling.ladder --report 25m=runs/25m/eval/report.json --report 75m=... --metric mel

Compute per second of audio counts the matrix multiplies of the transformer layers (2 FLOPs per multiply-add,
×3 for forward + backward as in the PaLM appendix) plus the windowed attention scores (2·2·N·W·C per layer,
W = window keys), and the convolutions; it is an estimate for MFU, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from taae.models import from_config
from taae.models.base import count_parameters

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PowerLaw:
    """metric ≈ coefficient · N^exponent over parameter counts N (fit in log-log space)."""

    coefficient: float
    exponent: float
    r2: float

    def __call__(self, n: float) -> float:
        return self.coefficient * n**self.exponent


def fit_power_law(sizes: list[float], values: list[float]) -> PowerLaw:
    """Least squares on log(value) = log(a) + b·log(N); needs ≥ 2 sizes and positive values."""
    if len(sizes) != len(values) or len(sizes) < 2:
        raise ValueError(f"need at least two (size, value) pairs, got {len(sizes)} sizes and {len(values)} values")
    if min(sizes) <= 0 or min(values) <= 0:
        raise ValueError("a power law needs positive sizes and values (use a distance, or 1 − score)")
    x = torch.tensor(sizes, dtype=torch.float64).log()
    y = torch.tensor(values, dtype=torch.float64).log()
    design = torch.stack([torch.ones_like(x), x], dim=1)
    log_a, b = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.flatten().tolist()
    residual = y - (log_a + b * x)
    total = (y - y.mean()).pow(2).sum()
    r2 = float(1 - residual.pow(2).sum() / total) if total > 0 else 1.0
    return PowerLaw(math.exp(log_a), b, r2)


def train_flops_per_second(model: torch.nn.Module) -> float:
    """Estimated training FLOPs (forward + backward) per second of audio for a TAAE model."""
    c = model.config
    flops, rate = 0.0, model.sample_rate / c.patch_size  # frames per second after patching
    depths = list(c.depths) + list(c.decoder_depths or c.depths)
    widths = list(c.widths) * 2
    strides = list(c.strides) * 2
    for i, (width, depth) in enumerate(zip(widths, depths)):
        stage_rate = rate / math.prod(strides[: i % len(c.widths) + 1])
        per_frame = depth * (2 * (16 * width * width) + 2 * 2 * sum(c.window) * width)
        flops += per_frame * stage_rate
    convs = count_parameters(model) - sum(16 * w * w * d for w, d in zip(widths, depths))
    flops += 2 * max(convs, 0) * rate  # convs run at ≤ 50 Hz; an upper bound
    return 3 * flops


def ladder(recipe: Path, sizes: list[Path]) -> list[dict]:
    rows = []
    for path in sizes:
        with torch.device("meta"):
            model = from_config(recipe, path)
        rows.append({"size": path.stem, "parameters": count_parameters(model),
                     "train_tflops_per_audio_second": train_flops_per_second(model) / 1e12})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "configs/taae/recipe.yaml")
    parser.add_argument("--sizes", type=Path, nargs="*", default=sorted((ROOT / "configs/taae/ladder").glob("*.yaml")))
    parser.add_argument("--report", action="append", default=[], help="SIZE=report.json from evaluate.py")
    parser.add_argument("--metric", default="mel", help="metric key in report.json (a distance: lower is better)")
    parser.add_argument("--preset", default="700bps")
    args = parser.parse_args(argv)
    rows = ladder(args.recipe, args.sizes)
    print("| size | parameters | training TFLOPs per audio second |\n|---|---|---|")
    for row in sorted(rows, key=lambda r: r["parameters"]):
        print(f"| {row['size']} | {row['parameters'] / 1e6:.1f} M | {row['train_tflops_per_audio_second']:.3f} |")
    if args.report:
        counts = {r["size"]: r["parameters"] for r in rows}
        sizes, values = [], []
        for item in args.report:
            name, _, path = item.partition("=")
            if name not in counts:
                raise ValueError(f"--report {item!r}: size {name!r} is not one of {sorted(counts)}")
            report = json.loads(Path(path).read_text())
            sizes.append(counts[name])
            values.append(_metric(report, args.preset, args.metric, path))
        law = fit_power_law(sizes, values)
        print(f"\n{args.metric} ≈ {law.coefficient:.4g} · N^{law.exponent:.4f}  "
              f"(R² = {law.r2:.3f}, {len(sizes)} sizes)")


def _metric(report: dict, preset: str, metric: str, path: str) -> float:
    for system in report.get("systems", {}).values():  # evaluate.py's report.json: {name: summary}
        if preset in (system.get("preset"), system.get("name")):
            value = system.get("metrics", {}).get(metric, {})
            return float(value["mean"] if isinstance(value, dict) else value)
    raise ValueError(f"{path}: no preset {preset!r} with metric {metric!r}")


if __name__ == "__main__":
    main()
