"""A run that cannot go on stops: N consecutive skipped steps raise, naming the last finite step."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from taae.io.checkpoints import load_checkpoint
from taae.training.guard import DEFAULT_MAX_CONSECUTIVE_SKIPS, SkipGuard, TrainingDiverged
from tests.training.test_module import make_data, make_module, trainer, write_speech


def test_the_guard_counts_only_consecutive_skips():
    guard = SkipGuard(limit=3)
    guard.skipped("generator", 10, [])
    guard.skipped("generator", 10, [])
    guard.finite(7)  # a finite step resets the run
    guard.skipped("discriminator", 12, [])
    guard.skipped("discriminator", 12, [])
    with pytest.raises(TrainingDiverged, match=r"3 consecutive steps were non-finite \(the last at the "
                                               r"reconstruction, global step 12\); the last finite step was "
                                               r"generator step 7\. Usual causes: a learning rate too high.*"
                                               r"checkpoints on disk are kept: a.ckpt"):
        guard.skipped("reconstruction", 12, ["a.ckpt"])


def test_the_limit_is_validated_and_zero_never_stops():
    assert SkipGuard().limit == DEFAULT_MAX_CONSECUTIVE_SKIPS == 50
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="model.max_consecutive_skips must be an integer >= 0"):
            SkipGuard(limit=bad)
    guard = SkipGuard(limit=0)
    for _ in range(1000):
        guard.skipped("generator", 0, [])


def test_a_diverged_run_stops_and_keeps_its_checkpoint(tmp_path):
    module = make_module(max_consecutive_skips=4)
    module.optimizer_g = lambda p: torch.optim.AdamW(p, lr=1e9)  # the first step blows the generator up
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", every_n_train_steps=2)
    run = trainer(tmp_path, 10_000, callbacks=[checkpoint], enable_checkpointing=True)
    with pytest.raises(TrainingDiverged, match="4 consecutive steps were non-finite") as info:
        run.fit(module, make_data(write_speech(tmp_path / "data", 3)))
    assert int(module.nan_skips) == 4  # stopped at the limit, not after max_steps
    steps = int(module.generator_steps)
    assert steps >= 1 and f"the last finite step was generator step {steps}" in str(info.value)
    saved = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert str(tmp_path / "ckpt" / "last.ckpt") in str(info.value)
    assert int(saved["state_dict"]["generator_steps"]) == steps  # the last good state, not overwritten


def test_a_resumed_run_names_the_step_it_resumed_from():
    """Without the checkpoint's step count the guard would say "no step was finite yet" after a resume."""
    module = make_module(max_consecutive_skips=2)
    module.on_load_checkpoint({"state_dict": {"generator_steps": torch.tensor(1234)}})
    module.skip_guard.skipped("generator", 2468, [])
    with pytest.raises(TrainingDiverged, match="the last finite step was generator step 1234"):
        module.skip_guard.skipped("generator", 2468, [])
