"""The ladder runner: train every rung on a matched budget, evaluate it at the presets, write one table.

    python -m taae.scaling run --ladder configs/ladder/cpu_mini.yaml [--budget audio_seconds=4800] [--out DIR]

Per rung, in ``<out>/<family>/<rung>/``:
  1. ``rung.json``: the plan (composed configs, fingerprint, parameters, compute, budget → batches), written
     before training, and the wall-clock of every training session;
  2. training through ``train.py``'s own CLI (``TaaeCLI``) with ``trainer.default_root_dir`` = the rung folder (which
     places every log and checkpoint: a rung whose configs name a folder of their own is refused at planning) and
     ``trainer.max_steps`` = 2 × the batches the budget buys (Lightning counts G and D steps), or
     ``trainer.max_time`` for a wall-clock budget; a ``checkpoints/last.ckpt`` left by an interrupted run is
     resumed exactly. The state at the end of the budget is saved as ``checkpoints/final.ckpt``;
  3. evaluation of ``final.ckpt`` by ``taae.eval.run.evaluate`` (what ``evaluate.py`` runs) into ``eval/``;
  4. ``result.json``, written last and atomically: a rung with a result whose fingerprint matches is finished
     and is skipped on the next run. The fingerprint covers the parsed training config (every value, defaults
     included), the budget and the evaluation settings, so an edited recipe is noticed, never silently reused.
Then ``<out>/ladder.csv`` and ``ladder.md`` (``taae.scaling.table``) hold every finished rung.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from taae.io.atomic import write_with
from taae.io.registry import instantiate
from taae.scaling import files, table
from taae.scaling.ladder import Budget, Ladder, Rung, settings_record

log = logging.getLogger(__name__)

FINAL_CHECKPOINT = "final.ckpt"
RESULT = "result.json"
PLAN = "rung.json"


@dataclass
class RungPlan:
    """What a rung will be trained on, known before its first step."""

    rung: Rung
    folder: Path
    fingerprint: str
    parameters: int
    train_flops_per_audio_second: float
    """Long-input rate (``model.train_flops_per_second()``)."""
    train_flops_per_item: float
    """One training crop (``model.train_flops(segment_length)``)."""
    batch_size: int
    segment_length: int
    sample_rate: int
    budget: Budget
    batches: int | None
    """Generator steps the budget buys; None for a wall-clock budget."""
    max_time: str | None

    @property
    def batch_audio_seconds(self) -> float:
        return self.batch_size * self.segment_length / self.sample_rate

    def record(self) -> dict:
        return {"rung": self.rung.key, "configs": [str(p) for p in self.rung.configs], "fingerprint": self.fingerprint,
                "parameters": self.parameters, "train_flops_per_audio_second": self.train_flops_per_audio_second,
                "train_flops_per_item": self.train_flops_per_item,
                "data": {"batch_size": self.batch_size, "segment_length": self.segment_length,
                         "sample_rate": self.sample_rate},
                "budget": {"requested": str(self.budget), "batches": self.batches,
                           "max_steps": 2 * self.batches if self.batches else -1, "max_time": self.max_time}}


@contextmanager
def _own_argv() -> Iterator[None]:
    """LightningCLI warns when it gets ``args`` while ``sys.argv`` holds other flags: the runner's own argv."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv


def _parse(configs: list[Path]):
    """The parsed training config of a composition, exactly as ``train.py fit`` would see it (nothing built)."""
    from taae.training.cli import TaaeCLI

    class ParseOnly(TaaeCLI):
        def instantiate_classes(self) -> None:
            pass

    with _own_argv():
        return ParseOnly(args=[a for p in configs for a in ("--config", str(p))], run=False).config


def _seconds_to_max_time(seconds: float) -> str:
    """Lightning's ``DD:HH:MM:SS`` for ``trainer.max_time``."""
    s = max(1, round(seconds))
    return f"{s // 86400:02d}:{s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def plan(rung: Rung, budget: Budget, ladder: Ladder, out: Path) -> RungPlan:
    from taae.training.rundir import explicit_run_dirs

    config = _parse(rung.configs)
    explicit = explicit_run_dirs(config.trainer)
    if explicit:  # every rung would log and checkpoint there, and none could resume from its own folder
        raise ValueError(f"rung {rung.key}: its configs name a run folder ({', '.join(explicit)}); leave it null so "
                         "that trainer.default_root_dir, the rung's folder, places it (taae.training.rundir)")
    data = config.data.init_args
    generator_spec = config.model.init_args.generator.as_dict()
    with torch.device("meta"):  # sizes only: no memory, no init
        generator = instantiate(generator_spec, f"{rung.key}: model.init_args.generator")
    segment = int(data.segment_length)
    per_item = generator.train_flops(segment)
    record = {"config": config.as_dict(), "budget": str(budget), **settings_record(ladder)}
    fingerprint = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    batches = budget.batches(int(data.batch_size) * segment / generator.sample_rate, int(data.batch_size) * per_item)
    max_time = _seconds_to_max_time(budget.value) if budget.kind == "wall_seconds" else ladder.guard_time
    return RungPlan(rung=rung, folder=out / rung.family / rung.name, fingerprint=fingerprint,
                    parameters=generator.num_parameters(),
                    train_flops_per_audio_second=generator.train_flops_per_second(), train_flops_per_item=per_item,
                    batch_size=int(data.batch_size), segment_length=segment, sample_rate=generator.sample_rate,
                    budget=budget, batches=batches, max_time=max_time)


def _check_previous(p: RungPlan, retrain_changed: bool) -> dict | None:
    """The finished result of this plan, None if it must (still) train; a changed rung is refused or set aside."""
    previous = None
    for name in (RESULT, PLAN):
        if (p.folder / name).is_file():
            previous = files.read_json(p.folder / name)
            break
    if previous is None or previous.get("fingerprint") == p.fingerprint:
        return previous if previous is not None and (p.folder / RESULT).is_file() else None
    if not retrain_changed:
        raise ValueError(
            f"rung {p.rung.key} in {p.folder} was trained with another configuration, budget or evaluation "
            f"(fingerprint {str(previous.get('fingerprint'))[:12]} vs {p.fingerprint[:12]} now); pass "
            "--retrain-changed to move it aside and train again, or choose another --out")
    stale = p.folder.with_name(f"{p.folder.name}.stale-{str(previous.get('fingerprint'))[:8]}")
    log.warning("%s: configuration changed, moving the old run to %s", p.rung.key, stale)
    shutil.move(str(p.folder), str(stale))
    return None


def train(p: RungPlan):
    """Train (or resume) one rung to the end of its budget; returns the session's record and the trainer."""

    checkpoints = p.folder / "checkpoints"
    args = ["fit", *[a for c in p.rung.configs for a in ("--config", str(c))],
            "--trainer.default_root_dir", str(p.folder),
            "--trainer.max_steps", str(2 * p.batches if p.batches else -1),
            "--trainer.max_time", p.max_time or "null"]
    if (checkpoints / "last.ckpt").is_file():
        log.info("%s: resuming from %s", p.rung.key, checkpoints / "last.ckpt")
        args += ["--ckpt_path", str(checkpoints / "last.ckpt")]
    start, cpu = time.perf_counter(), time.process_time()
    from taae.training.cli import TaaeCLI

    with _own_argv():
        cli = TaaeCLI(args=args)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if cli.trainer.interrupted:
        raise KeyboardInterrupt(f"{p.rung.key}: training interrupted; rerun to resume from its last checkpoint")
    # CPU seconds of this process (all its threads; data-loader workers not included): on a shared machine the
    # wall-clock depends on the neighbours, the CPU time much less.
    session = {"wall_seconds": seconds, "cpu_seconds": cpu, "generator_steps": int(cli.model.generator_steps),
               "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return session, cli.trainer


def evaluate(p: RungPlan, ladder: Ladder) -> tuple[dict, str]:
    """Evaluate ``final.ckpt`` at the ladder's presets; per-preset summaries and the per-file CSV's path."""
    from taae.eval.run import EvalConfig
    from taae.eval.run import evaluate as run_evaluation

    ev = ladder.evaluation
    result = run_evaluation(EvalConfig(
        data=ev.data, out=str(p.folder / "eval"), checkpoint=str(p.folder / "checkpoints" / FINAL_CHECKPOINT),
        presets=list(ev.presets), references=ev.references, max_files=ev.max_files, workers=ev.workers,
        device=ev.device, examples=ev.examples, mos=ev.mos))
    presets = {}
    for preset in ev.presets:
        system = next((s for s in result.report.systems if s.kind == "codec" and s.name.endswith(f"_{preset}")), None)
        if system is None:
            presets[preset] = {"system": None, "note": "; ".join(n for n in result.report.notes if preset in n)}
            continue
        presets[preset] = {"system": system.name, "bitrate": system.bitrate, "resolved": system.preset,
                           "metrics": {m: asdict(s) for m, s in system.metrics.items()}}
    return presets, str(result.paths["csv"])


def run_rung(p: RungPlan, ladder: Ladder, retrain_changed: bool = False) -> dict:
    """Train (unless finished), evaluate and record one rung; a finished rung's result is returned as it is."""
    done = _check_previous(p, retrain_changed)
    if done is not None:
        log.info("%s: finished (%s), skipped", p.rung.key, p.folder / RESULT)
        return done
    plan_path = p.folder / PLAN
    record = files.read_json(plan_path) if plan_path.is_file() else {**p.record(), "sessions": []}
    if not (p.folder / "checkpoints" / FINAL_CHECKPOINT).is_file():
        what = f"{p.batches} batches" if p.batches else f"max_time {p.max_time}"
        log.info("%s: %.2f M parameters, training %s (%s)", p.rung.key, p.parameters / 1e6, what, p.budget)
        files.write_json(plan_path, record)
        session, trainer = train(p)
        record["sessions"].append(session)
        files.write_json(plan_path, record)  # before final.ckpt: a final checkpoint always has its session
        write_with(p.folder / "checkpoints" / FINAL_CHECKPOINT, lambda tmp: trainer.save_checkpoint(tmp))
    log.info("%s: evaluating", p.rung.key)
    presets, per_file = evaluate(p, ladder)
    steps = record["sessions"][-1]["generator_steps"] if record["sessions"] else 0
    result = copy.deepcopy(record)
    result.update({
        "family": p.rung.family, "name": p.rung.name,
        "checkpoint": str(p.folder / "checkpoints" / FINAL_CHECKPOINT),
        "evaluation": {"dir": str(p.folder / "eval"), "per_file": per_file, **asdict(ladder.evaluation)},
        "presets": presets,
    })
    result["budget"].update({
        "trained_batches": steps, "audio_seconds": steps * p.batch_audio_seconds,
        "train_flops": steps * p.batch_size * p.train_flops_per_item,
        "wall_seconds": sum(s["wall_seconds"] for s in record["sessions"]),
        "cpu_seconds": sum(s.get("cpu_seconds", 0.0) for s in record["sessions"]),
        "met": bool(steps) and (p.batches is None or steps >= p.batches),
    })
    files.write_json(p.folder / RESULT, result)
    return result


def run_ladder(ladder: Ladder, budget: Budget | None = None, out: str | Path | None = None,
               only: list[str] | None = None, retrain_changed: bool = False) -> tuple[list[dict], dict[str, Path]]:
    """Plan every selected rung (all configs checked before any training), run them in order, write the table."""
    budget = budget or ladder.budget
    if budget is None:
        raise ValueError(f"{ladder.path}: no budget in the ladder file; pass --budget KIND=VALUE")
    out = Path(out) if out is not None else ladder.out
    if out is None:
        raise ValueError(f"{ladder.path}: no 'out' in the ladder file; pass --out DIR")
    plans = [plan(r, budget, ladder, out) for r in ladder.select(only)]
    results = []
    for i, p in enumerate(plans, 1):
        log.info("rung %d/%d: %s", i, len(plans), p.rung.key)
        results.append(run_rung(p, ladder, retrain_changed))
        paths = table.write(out, results)
    log.info("table: %s", ", ".join(str(v) for v in paths.values()))
    return results, paths
