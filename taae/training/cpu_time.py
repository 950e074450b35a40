"""Checkpoints at fixed process-CPU times: learning curves that a busy machine does not bend.

Wall-clock budgets on a shared machine measure the load as much as the model (``max_time`` stopped the quickstart
at 2056 of 3000 batches on a busy day, README.md). The CPU time this process spent training does not depend on
what else runs, as long as the process has a fixed number of threads; ``benchmarks/learning_curves.py`` runs one
torch thread per process and the data loading in the same process, so every CPU second of a run is counted here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L

__all__ = ["CpuTimeCheckpoints", "checkpoint_name"]


def checkpoint_name(minutes: float) -> str:
    """``cpu_2.5min.ckpt``, ``cpu_10min.ckpt``: the file a checkpoint at ``minutes`` of CPU time is saved to."""
    return f"cpu_{minutes:g}min.ckpt"


class CpuTimeCheckpoints(L.Callback):
    """Save a checkpoint each time the training's process CPU time passes one of ``minutes``; stop after the last.

    CPU time counts from the start of training (imports, data indexing and model building excluded) and includes
    validation if any runs. Each save is recorded in ``dirpath/cpu_time.json``: minutes, generator batches, CPU
    and wall seconds at the save.

    Args:
        minutes: CPU-time checkpoints in minutes, increasing.
        dirpath: where the checkpoints and ``cpu_time.json`` go.
        stop: stop training after the last checkpoint.
    """

    def __init__(self, minutes: Sequence[float], dirpath: str, stop: bool = True):
        super().__init__()
        minutes = [float(m) for m in minutes]
        if not minutes or any(m <= 0 for m in minutes) or sorted(minutes) != minutes:
            raise ValueError(f"CpuTimeCheckpoints minutes must be positive and increasing, got {minutes}")
        self.minutes, self.dirpath, self.stop = minutes, Path(dirpath), stop
        self.saved: list[dict] = []
        self._start_cpu = self._start_wall = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start_cpu, self._start_wall = time.process_time(), time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        cpu = time.process_time() - self._start_cpu
        while len(self.saved) < len(self.minutes) and cpu >= 60 * self.minutes[len(self.saved)]:
            minutes = self.minutes[len(self.saved)]
            self.dirpath.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(self.dirpath / checkpoint_name(minutes))
            steps = getattr(pl_module, "generator_steps", None)
            self.saved.append({"minutes": minutes, "checkpoint": checkpoint_name(minutes),
                               "batches": int(steps) if steps is not None else batch_idx + 1,
                               "cpu_seconds": round(cpu, 2),
                               "wall_seconds": round(time.perf_counter() - self._start_wall, 2)})
            (self.dirpath / "cpu_time.json").write_text(json.dumps(self.saved, indent=2) + "\n")
        if self.stop and len(self.saved) == len(self.minutes):
            trainer.should_stop = True
