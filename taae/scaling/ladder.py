"""A scaling ladder: which rungs to train, on what budget, and how to evaluate them (``configs/ladder/*.yaml``).

A ladder file names, per model family, the training YAMLs of its recipe and one size file per rung; every rung
is the composition ``family configs → rung size → common`` (``train.py --config …`` in that order), so a rerun
reads whatever the recipe files say today. ``python -m taae.scaling sizes`` prints each rung's parameters and
compute without training anything:

    name: cpu_mini
    out: runs/ladder/cpu_mini                    # default --out
    budget: audio_seconds=4800                   # default --budget, per rung: audio_seconds | flops | wall_seconds
    guard_time: "00:01:30:00"                    # wall-clock guard of a rung trained on a step budget (optional)
    common: [configs/trainer/cpu.yaml, configs/ladder/cpu_mini/common.yaml]
    evaluation: {data: data/demo/test, presets: [400bps, 700bps, 1000bps]}
    families:
      taae:   {configs: [configs/taae/quickstart.yaml], rungs: {0.6m: configs/ladder/cpu_mini/taae_0.6m.yaml}}

Paths are relative to the working directory (the repository root, like every config).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

BUDGET_KINDS = ("audio_seconds", "flops", "wall_seconds")
"""Per-rung budgets: seconds of training audio, generator training FLOPs (the models' own count), wall-clock."""


@dataclass(frozen=True)
class Budget:
    """What every rung of a ladder gets: ``KIND=VALUE`` with KIND one of ``BUDGET_KINDS``."""

    kind: str
    value: float

    def __post_init__(self):
        if self.kind not in BUDGET_KINDS:
            raise ValueError(f"budget kind {self.kind!r} is not one of {list(BUDGET_KINDS)}")
        if not math.isfinite(self.value) or self.value <= 0:
            raise ValueError(f"budget {self.kind} must be a positive number, got {self.value}")

    @classmethod
    def parse(cls, text: str) -> Budget:
        kind, sep, value = str(text).partition("=")
        if not sep:
            raise ValueError(f"budget {text!r}: expected KIND=VALUE, e.g. audio_seconds=4800, flops=1e15 or "
                             "wall_seconds=600")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"budget {text!r}: {value!r} is not a number") from None
        return cls(kind.strip(), number)

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"

    def batches(self, batch_audio_seconds: float, batch_train_flops: float) -> int | None:
        """Generator steps (batches) this budget buys; None for a wall-clock budget (bounded by time instead)."""
        if self.kind == "audio_seconds":
            return max(1, math.ceil(self.value / batch_audio_seconds - 1e-9))
        if self.kind == "flops":
            return max(1, math.ceil(self.value / batch_train_flops - 1e-9))
        return None


@dataclass
class EvaluationSettings:
    """How each rung is evaluated, through ``taae.eval.run.evaluate`` (what ``evaluate.py`` runs)."""

    data: str
    """Test folder or manifest."""
    presets: list[str] = field(default_factory=lambda: ["400bps", "700bps", "1000bps"])
    """Presets of every rung's model; RVQGAN and TAAE share the ``{bps}bps`` names."""
    max_files: int | None = None
    references: str = "none"
    """Reference codecs are the same for every rung: evaluate them once with ``evaluate.py --checkpoint none``."""
    workers: int | None = None
    device: str = "cpu"
    examples: int = 1
    mos: bool = False

    def __post_init__(self):
        if isinstance(self.presets, str):  # `presets: 700bps` is one preset, not the characters 7, 0, 0, b, p, s
            self.presets = [self.presets]
        if not isinstance(self.presets, (list, tuple)):
            raise ValueError(f"evaluation.presets must be a preset name or a list of them, got {self.presets!r}")
        self.presets = [str(p) for p in self.presets]
        if not self.presets:
            raise ValueError("evaluation.presets must name at least one preset")


@dataclass
class Rung:
    """One model of the ladder: its family, its name and the YAMLs composing its training run."""

    family: str
    name: str
    configs: list[Path]

    @property
    def key(self) -> str:
        return f"{self.family}/{self.name}"


@dataclass
class Ladder:
    name: str
    path: Path
    rungs: list[Rung]
    evaluation: EvaluationSettings
    out: Path | None = None
    budget: Budget | None = None
    guard_time: str | None = None
    """Lightning ``max_time`` for rungs on a step budget, so that a stalled rung cannot hold the study forever."""

    def select(self, names: list[str] | None) -> list[Rung]:
        """The rungs named ``family/rung``, ``family`` or ``rung`` (all when ``names`` is empty)."""
        if not names:
            return list(self.rungs)
        chosen = [r for r in self.rungs if {r.key, r.family, r.name} & set(names)]
        unknown = [n for n in names if not any(n in (r.key, r.family, r.name) for r in self.rungs)]
        if unknown:
            raise ValueError(f"{self.path}: no rung or family {unknown}; rungs: {[r.key for r in self.rungs]}")
        return chosen


_GUARD_TIME = re.compile(r"\d{1,3}:[0-2]\d:[0-5]\d:[0-5]\d")
_TOP_KEYS = {"name", "out", "budget", "guard_time", "common", "evaluation", "families"}


def _paths(value: Any, where: str) -> list[Path]:
    items = [value] if isinstance(value, (str, Path)) else value
    if not isinstance(items, list) or not all(isinstance(v, (str, Path)) for v in items):
        raise ValueError(f"{where}: expected a YAML path or a list of them, got {value!r}")
    paths = [Path(v) for v in items]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{where}: config file not found: {p}")
    return paths


def load_ladder(path: str | Path) -> Ladder:
    """Read and check a ladder YAML; every error names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ladder file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(_TOP_KEYS)}")
    for key in ("families", "evaluation"):
        if not isinstance(data.get(key), dict):
            raise ValueError(f"{path}: '{key}' must be a mapping")
    common = _paths(data.get("common", []), f"{path}: common")
    known_eval = {f.name for f in fields(EvaluationSettings)}
    bad = sorted(set(data["evaluation"]) - known_eval)
    if bad or "data" not in data["evaluation"]:
        raise ValueError(f"{path}: evaluation needs 'data' and takes only {sorted(known_eval)}; got {bad or 'no data'}")
    rungs = []
    for family, spec in data["families"].items():
        where = f"{path}: families.{family}"
        if not isinstance(spec, dict) or set(spec) - {"configs", "rungs"} or not isinstance(spec.get("rungs"), dict):
            raise ValueError(f"{where}: expected {{configs: [...], rungs: {{name: size.yaml, ...}}}}")
        base = _paths(spec.get("configs", []), f"{where}.configs")
        if not spec["rungs"]:
            raise ValueError(f"{where}.rungs: a family needs at least one rung")
        for name, size in spec["rungs"].items():
            rungs.append(Rung(str(family), str(name), base + _paths(size, f"{where}.rungs.{name}") + common))
    budget = data.get("budget")
    guard_time = data.get("guard_time")
    if guard_time is not None and not (isinstance(guard_time, str) and _GUARD_TIME.fullmatch(guard_time)):
        raise ValueError(f"{path}: guard_time must be \"DD:HH:MM:SS\" (Lightning's max_time), got {guard_time!r}")
    return Ladder(
        name=str(data.get("name", path.stem)), path=path, rungs=rungs,
        evaluation=EvaluationSettings(**data["evaluation"]),
        out=Path(data["out"]) if data.get("out") else None,
        budget=Budget.parse(budget) if budget is not None else None,
        guard_time=data.get("guard_time"),
    )


def settings_record(ladder: Ladder) -> dict:
    """What of the ladder file shapes every rung's result (for the fingerprint and the records)."""
    return {"ladder": str(ladder.path), "evaluation": asdict(ladder.evaluation), "guard_time": ladder.guard_time}
