"""User errors in ``taae``, ``train.py`` and ``evaluate.py``: one line naming the problem, exit 2, no traceback;
``--debug`` gives the traceback back. One subprocess per command proves the real entry point; the other cases call
the same ``main`` in-process (a subprocess costs seconds of imports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from taae.__main__ import main as taae_main
from taae.codec import Codec
from taae.errors import condense_parser_error
from taae.eval.run import main as evaluate_main
from taae.training.cli import main as train_main
from tests.codec.test_codec import tiny_model, write_checkpoint
from tests.conftest import synth_speech

ROOT = Path(__file__).resolve().parents[1]
TINY = ["fit", "--config", "configs/taae/tiny.yaml"]


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout)


def _one_line(stderr: str, prog: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "c.ckpt", tiny_model())


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return Codec(tiny_model()).export(tmp_path_factory.mktemp("export") / "export")


def _data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        sf.write(folder / f"u{i}.wav", synth_speech(0.3, 16000, seed=i)[0].numpy(), 16000)
    return folder


# -- taae ------------------------------------------------------------------------------------------------------

def test_taae_corrupt_safetensors_is_one_line_and_debug_shows_the_traceback(tmp_path, export):
    broken = tmp_path / "export"
    broken.mkdir()
    (broken / "config.json").write_bytes((export / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    proc = _run("-m", "taae", "info", "-c", str(broken))
    assert proc.returncode == 2
    assert "model.safetensors is not a readable safetensors file" in _one_line(proc.stderr, "taae info")
    debug = _run("-m", "taae", "info", "-c", str(broken), "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.parametrize("case, needle", [
    ("missing", "checkpoint or export not found: "),
    ("bad json", "config.json is not valid JSON"),
    ("no generator", "config.json: missing key 'generator'"),
])
def test_taae_bad_exports_name_the_file(tmp_path, export, capsys, case, needle):
    folder = tmp_path / "export"
    if case != "missing":
        folder.mkdir()
        (folder / "model.safetensors").write_bytes((export / "model.safetensors").read_bytes())
        config = json.loads((export / "config.json").read_text())
        config.pop("generator")
        (folder / "config.json").write_text("{not json" if case == "bad json" else json.dumps(config))
    assert taae_main(["info", "-c", str(folder)]) == 2
    assert needle in _one_line(capsys.readouterr().err, "taae info")


# -- evaluate.py -----------------------------------------------------------------------------------------------

def test_evaluate_missing_data_is_one_line(tmp_path):
    proc = _run("evaluate.py", "--checkpoint", "none", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert f"data not found: {tmp_path / 'nowhere'}" in _one_line(proc.stderr, "evaluate.py")


def test_evaluate_checkpoint_typo_and_unknown_presets(tmp_path, checkpoint, capsys):
    data = _data(tmp_path / "d")
    assert evaluate_main(["--checkpoint", str(tmp_path / "typo.ckpt"), "--data", str(data), "--out",
                          str(tmp_path / "o")]) == 2
    assert "typo.ckpt" in _one_line(capsys.readouterr().err, "evaluate.py")
    assert evaluate_main(["--checkpoint", str(checkpoint), "--data", str(data), "--out", str(tmp_path / "o"),
                          "--presets", "9000bps,nope", "--references", "none"]) == 2
    line = _one_line(capsys.readouterr().err, "evaluate.py")
    assert "none of the presets ['9000bps', 'nope'] exists" in line and "no checkpoint" not in line


# -- train.py --------------------------------------------------------------------------------------------------

def test_train_key_typo_names_the_key_path(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  init_args:\n    discriminator:\n      init_args:\n        filterz: 3\n")
    proc = _run("train.py", *TINY, "--config", str(typo), "--config", "configs/data/demo.yaml")
    assert proc.returncode == 2
    line = _one_line(proc.stderr, "train.py")
    assert "model.init_args.discriminator.init_args.filterz: unknown key" in line
    assert "Union subtypes" not in proc.stderr and "usage:" not in proc.stderr


@pytest.mark.parametrize("args, needle", [
    (["--model.init_args.loss_weightz", "{mel: 1}"], "model.init_args.loss_weightz.mel: unknown key"),
    (["--data.init_args.batch_size", "many"], "data.init_args.batch_size: Expected a <class 'int'>. Got value: many"),
    (["--trainer.max_stepz", "3"], "unrecognized arguments: --trainer.max_stepz 3"),
    (["--model.init_args.generator.init_args.config.widthz", "[128]"], "unknown TAAEConfig keys ['widthz']"),
    (["--model.init_args.loss_weights", "{mel: 1, vq/comitment: 1}"], "unknown terms ['vq/comitment']"),
])
def test_train_config_errors_are_one_line(tmp_path, capsys, args, needle):
    data = ["--data.class_path", "taae.data.AudioDataModule", "--data.init_args.train", str(_data(tmp_path / "d"))]
    assert train_main([*TINY, *data, *args]) == 2
    assert needle in _one_line(capsys.readouterr().err, "train.py")


def test_train_missing_data_folder_is_one_line(tmp_path, capsys):
    args = [*TINY, "--data.class_path", "taae.data.AudioDataModule", "--data.init_args.train",
            str(tmp_path / "missing"), "--data.init_args.val", "null", "--data.init_args.test", "null",
            "--trainer.logger", "false", "--trainer.callbacks", "[]", "--trainer.default_root_dir", str(tmp_path)]
    assert train_main(args) == 2
    assert str(tmp_path / "missing") in _one_line(capsys.readouterr().err, "train.py")


def test_train_a_diverged_run_stops_in_one_line(tmp_path, capsys):
    """lr 1e9 on the tiny config: every step non-finite; the run stops at the skip limit instead of hanging."""
    limit = 5  # the default is 50; fewer keeps the test short, the mechanism is the same
    assert train_main([*TINY, "--data.class_path", "taae.data.AudioDataModule", "--data.init_args.train",
                      str(_data(tmp_path / "d")), "--data.init_args.val", "null", "--data.init_args.test", "null",
                      "--data.init_args.segment_length", "3200", "--data.init_args.batch_size", "2",
                      "--data.init_args.num_workers", "0", "--model.init_args.optimizer_g.init_args.lr", "1e9",
                      "--model.init_args.max_consecutive_skips", str(limit), "--trainer.max_steps", "100000",
                      "--trainer.logger", "false", "--trainer.callbacks", "[]", "--trainer.enable_progress_bar",
                      "false", "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu"]) == 2
    line = _one_line(capsys.readouterr().err, "train.py")
    assert f"training stopped: {limit} consecutive steps were non-finite" in line
    assert "the last finite step was generator step" in line or "no step was finite yet" in line
    assert "a learning rate too high" in line


def test_condense_keeps_the_innermost_reason():
    nested = ('Parser key "model":\n  Does not validate against any of the Union subtypes\n  Errors:\n'
              "    - Problem with given class_path 'taae.training.CodecModule':\n"
              '        Parser key "discriminator":\n          Errors:\n'
              "            - Option 'filterz' is not accepted\n            - Expected a <class 'NoneType'>\n")
    assert condense_parser_error(nested) == "model.init_args.discriminator.init_args.filterz: unknown key"
    assert condense_parser_error("unrecognized arguments: --x 1") == "unrecognized arguments: --x 1"
