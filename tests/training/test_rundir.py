"""One run folder: trainer.default_root_dir places logs and checkpoints, and a saved config moves with it."""

import hashlib

import pytest
import yaml

from taae.training.cli import TaaeCLI
from taae.training.rundir import CSVLogger, explicit_run_dirs
from tests.training.test_cli import _data_args

CPU = ["--config", "configs/taae/tiny.yaml", "--config", "configs/trainer/cpu.yaml"]
QUICKSTART = ["configs/taae/tiny.yaml", "configs/data/demo.yaml", "configs/trainer/cpu.yaml",
              "configs/taae/quickstart.yaml"]


def _data(folder):
    """Tiny train and val sets; checkpoints are written at validation (trainer.val_check_interval)."""
    return [*_data_args(folder), "--data.init_args.val", str(folder), "--data.init_args.max_val_items", "1",
            "--trainer.val_check_interval", "1"]


def _run(args, root, steps=2):
    return TaaeCLI(args=["fit", *args, "--trainer.max_steps", str(steps), "--trainer.max_time", "null",
                         "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)])


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_root_dir_places_every_log_and_checkpoint(tmp_path):
    root = tmp_path / "run"
    _run([*CPU, *_data(tmp_path / "d")], root)
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert (root / "csv" / "metrics.csv").is_file()
    assert list((root / "tb").glob("events.out.tfevents.*"))
    assert not (tmp_path / "runs").exists() and not list(tmp_path.glob("lightning_logs"))


def test_a_saved_config_reused_elsewhere_leaves_the_first_run_alone(tmp_path):
    """The saved config.yaml keeps null folders: reusing it (stage 2, a rerun) with a new root writes there."""
    first, second = tmp_path / "first", tmp_path / "second"
    _run([*CPU, *_data(tmp_path / "d")], first)
    saved = first / "tb" / "config.yaml"
    trainer = yaml.safe_load(saved.read_text())["trainer"]
    assert all(logger["init_args"].get("save_dir") is None for logger in trainer["logger"])
    checkpoints = [cb for cb in trainer["callbacks"] if "Checkpoint" in cb["class_path"]]
    assert checkpoints and all(cb["init_args"].get("dirpath") is None for cb in checkpoints)
    before = _digest(first / "checkpoints" / "last.ckpt")
    _run(["--config", str(saved)], second, steps=4)
    assert _digest(first / "checkpoints" / "last.ckpt") == before
    assert (second / "checkpoints" / "last.ckpt").is_file() and (second / "csv" / "metrics.csv").is_file()


def test_explicit_folders_are_kept_and_a_bare_logger_says_what_is_missing(tmp_path):
    root, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    _run([*CPU, *_data(tmp_path / "d"), "--trainer.logger", "taae.training.rundir.CSVLogger",
          "--trainer.logger.save_dir", str(elsewhere)], root)
    assert (elsewhere / "csv" / "metrics.csv").is_file() and not (root / "csv").exists()
    with pytest.raises(ValueError, match="save_dir is null"):
        CSVLogger()


def test_an_overlay_that_names_a_run_folder_is_found(tmp_path):
    """A planted quickstart overlay restating its folders, as configs/taae/quickstart.yaml once did."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"trainer": {
        "default_root_dir": "runs/mine",
        "logger": [{"class_path": "taae.training.rundir.TensorBoardLogger"},
                   {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs/mine"}}],
        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                       "init_args": {"dirpath": "runs/mine/checkpoints"}}]}}))
    configs = [*QUICKSTART, str(overlay)]

    class ParseOnly(TaaeCLI):
        def instantiate_classes(self) -> None:
            pass

    config = ParseOnly(args=[a for c in configs for a in ("--config", c)], run=False).config
    assert explicit_run_dirs(config.trainer) == ["trainer.logger[1].save_dir=runs/mine",
                                                 "trainer.callbacks[0].dirpath=runs/mine/checkpoints"]
    shipped = ParseOnly(args=[a for c in QUICKSTART for a in ("--config", c)], run=False).config
    assert explicit_run_dirs(shipped.trainer) == []
