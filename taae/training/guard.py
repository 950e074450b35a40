"""Skip a non-finite batch whole, and stop a run that cannot go on: after N consecutive skips, training ends.

A skipped batch leaves the run as if it had never been drawn: :func:`rng_state` / :func:`set_rng_state` put back the
global RNG it drew from, :func:`snapshot` / :func:`restore` a module and its optimiser that had already stepped on it.

A skipped step leaves weights and optimiser states as they were, so Lightning's ``global_step`` (which counts
optimiser steps) stands still and ``max_steps`` is never reached: without a limit a diverged run (lr 1e9) would
skip forever. :class:`SkipGuard` counts consecutive skips and raises :class:`TrainingDiverged` at the limit, naming
the last finite step, the usual causes and the checkpoints on disk, which the error leaves untouched (Lightning
saves nothing when ``fit`` ends with an exception).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from taae.errors import UserError

DEFAULT_MAX_CONSECUTIVE_SKIPS = 50
"""Consecutive skipped batches before training stops (ours: a transient NaN never lasts this long)."""

USUAL_CAUSES = ("a learning rate too high", "a loss weight too large", "fp16 overflow (use bf16-mixed or 32-true)",
                "audio with NaN/inf samples", "gradient clipping switched off")


class TrainingDiverged(UserError, RuntimeError):
    """Training stopped: too many consecutive steps were non-finite."""


@dataclass
class SkipGuard:
    """Counts consecutive skipped steps of a run.

    Attributes:
        limit: skipped batches in a row that stop the run (0 = never stop).
        consecutive: the current run of skips.
        last_finite_step: generator step of the last batch that stepped (None before the first one).
    """

    limit: int = DEFAULT_MAX_CONSECUTIVE_SKIPS
    consecutive: int = 0
    last_finite_step: int | None = None

    def __post_init__(self):
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"model.max_consecutive_skips must be an integer >= 0, got {self.limit!r}")

    def finite(self, generator_step: int) -> None:
        """A batch stepped: the run of skips is over."""
        self.consecutive = 0
        self.last_finite_step = generator_step

    def skipped(self, where: str, global_step: int, checkpoints: list[str]) -> None:
        """A batch was skipped at ``where``; raise :class:`TrainingDiverged` when the limit is reached."""
        self.consecutive += 1
        if not self.limit or self.consecutive < self.limit:
            return
        last = ("no step was finite yet" if self.last_finite_step is None
                else f"the last finite step was generator step {self.last_finite_step}")
        kept = f"; checkpoints on disk are kept: {', '.join(checkpoints)}" if checkpoints else ""
        raise TrainingDiverged(
            f"training stopped: {self.consecutive} consecutive steps were non-finite (the last at the {where}, "
            f"global step {global_step}); {last}. Usual causes: {', '.join(USUAL_CAUSES)}{kept} "
            f"(model.max_consecutive_skips={self.limit})"
        )


def checkpoint_paths(trainer) -> list[str]:
    """The checkpoint files a trainer's ModelCheckpoint callbacks have written so far."""
    paths: list[str] = []
    for callback in getattr(trainer, "checkpoint_callbacks", None) or []:
        for path in (getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", "")):
            if path and path not in paths:
                paths.append(path)
    return paths


def rng_state() -> dict[str, Any]:
    """The global RNG state a batch draws from (FSQ dither, quantizer dropout)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def snapshot(module: nn.Module, optimizer) -> dict[str, Any]:
    """Copies of ``module``'s weights and ``optimizer``'s state (one copy of each per batch)."""
    optimizer = getattr(optimizer, "optimizer", optimizer)  # Lightning wraps it
    return {"weights": _clone(module.state_dict()), "optimizer": _clone(optimizer.state_dict())}


def restore(module: nn.Module, optimizer, saved: dict[str, Any]) -> None:
    """Put back what :func:`snapshot` copied."""
    module.load_state_dict(saved["weights"])
    getattr(optimizer, "optimizer", optimizer).load_state_dict(saved["optimizer"])


def _clone(state):
    """A copy of a (nested) state dict whose tensors no longer alias the live ones."""
    if isinstance(state, Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_clone(v) for v in state)
    return state
