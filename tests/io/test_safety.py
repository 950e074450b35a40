"""Trust boundaries: crafted checkpoints and exports run no code; taae's own files load the safe way."""

from __future__ import annotations

import fractions
import functools
import json
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from taae import __version__
from taae.codec import Codec
from taae.errors import UntrustedFileError
from taae.io.checkpoints import load_checkpoint, make_checkpoint_safe, unsafe_entries
from taae.io.registry import CODEC_MODELS, TRAINING_PARTS, allow_class, instantiate, optimizer_factory, resolve_class
from taae.models.taae import TAAE
from tests.codec.test_codec import spec_of, tiny_model, write_checkpoint


class _RunsCommand:
    """What a malicious checkpoint holds: unpickling it calls ``os.system``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    write_checkpoint(path, tiny_model())
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"] = {"lr": _RunsCommand(f"touch {marker}")}
    torch.save(ckpt, path)
    return path


def test_a_pickled_command_in_the_hyper_parameters_is_not_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UntrustedFileError, match=r"evil.ckpt holds pickled objects .*(posix|os)\.system.*"
                                                  r"--trust-checkpoint"):
        Codec.load(evil)
    with pytest.raises(UntrustedFileError):
        load_checkpoint(evil)
    assert not marker.exists()


def test_trust_unpickles_fully_and_warns(tmp_path):
    path = write_checkpoint(tmp_path / "old.ckpt", tiny_model())
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"] = {"ratio": fractions.Fraction(1, 3)}  # harmless, but not a plain type
    torch.save(ckpt, path)
    with pytest.raises(UntrustedFileError, match="fractions.Fraction"):
        Codec.load(path)
    with pytest.warns(UserWarning, match="fully unpickling a trusted checkpoint"):
        codec = Codec.load(path, trust=True)
    assert codec.weights == "generator"


def test_unreadable_checkpoints_are_errors_not_refusals(tmp_path):
    path = write_checkpoint(tmp_path / "cut.ckpt", tiny_model())
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot read checkpoint .*cut.ckpt") as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UntrustedFileError)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        load_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.parametrize("class_path", ["subprocess.run", "os.system", "builtins.eval", "posix.system"])
def test_a_foreign_class_path_in_a_checkpoint_is_refused(tmp_path, class_path):
    marker = tmp_path / "pwned"
    model = tiny_model()
    path = tmp_path / "evil.ckpt"
    state = {f"generator.{k}": v for k, v in model.state_dict().items()}
    args = {"args": ["touch", str(marker)]} if class_path == "subprocess.run" else {"command": f"touch {marker}"}
    torch.save({"state_dict": state, "taae": {"generator": {"class_path": class_path, "init_args": args},
                                              "version": __version__}}, path)
    with pytest.raises(UntrustedFileError, match=f"taae.generator.class_path: class_path '{class_path}' is not "
                                                 "allowed"):
        Codec.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("class_path", ["subprocess.run", "os.system"])
def test_a_foreign_class_path_in_an_export_is_refused(tmp_path, class_path):
    marker = tmp_path / "pwned"
    folder = Codec(tiny_model()).export(tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    config["generator"] = {"class_path": class_path, "init_args": {"args": ["touch", str(marker)]}}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UntrustedFileError, match=f"config.json: generator.class_path: class_path '{class_path}'"):
        Codec.load(folder)
    assert not marker.exists()


def test_a_nested_foreign_spec_is_refused_before_anything_is_built():
    spec = spec_of(tiny_model())
    spec["init_args"]["extra"] = {"class_path": "os.system", "init_args": {"command": "true"}}
    with pytest.raises(UntrustedFileError, match=r"config.init_args.extra: a class spec where TAAE's parameter "
                                                 r"'extra' takes no module"):
        instantiate(spec)


@pytest.mark.parametrize("class_path", [
    "taae.eval.run.subprocess",   # a module imported into a taae module
    "taae.data.demo.main",        # a taae function, not a class
    "taae.codec.Codec",           # a taae class that is not an nn.Module
    "torch.nn.Linear",            # torch, but not an optimiser or scheduler
    "torch.optim.AdamW",          # an optimiser: optimizer_factory's business, not a file's
    "taae.training.module.CodecModule",  # reads another file (init_weights_from) with a trust flag
])
def test_the_allow_list_is_narrow(class_path):
    with pytest.raises(UntrustedFileError, match="is not allowed"):
        resolve_class(class_path)


def test_foreign_modules_are_not_even_imported():
    assert "antigravity" not in sys.modules
    with pytest.raises(UntrustedFileError):
        resolve_class("antigravity.geohash")
    assert "antigravity" not in sys.modules


def test_allowed_classes_build():
    assert resolve_class("taae.models.taae.TAAE") is TAAE
    model = instantiate(spec_of(tiny_model()), requires=("encode", "decode", "presets"))
    assert isinstance(model, TAAE)
    with pytest.raises(ValueError, match="is not a codec model"):
        instantiate({"class_path": "taae.losses.MultiScaleMelLoss"}, requires=("encode",), registry=TRAINING_PARTS)
    factory = optimizer_factory({"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.5}})
    assert factory(model.parameters()).param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="not an optimiser|only torch.optim optimisers"):
        optimizer_factory({"class_path": "taae.models.taae.TAAE"})


def test_allow_class_extends_the_list():
    class Local(torch.nn.Module):
        pass

    with pytest.raises(UntrustedFileError):
        resolve_class(f"{Local.__module__}.{Local.__qualname__}")
    path = f"{Local.__module__}.{Local.__qualname__}"
    allow_class(Local)
    try:
        assert resolve_class(path) is Local
    finally:  # the registry is global: leave it as the other tests expect it
        CODEC_MODELS.pop(path)


def test_make_checkpoint_safe_turns_hyper_parameters_into_plain_types(tmp_path):
    ckpt = {
        "state_dict": OrderedDict(w=torch.zeros(2)),
        "hyper_parameters": {
            "optimizer_g": functools.partial(torch.optim.AdamW, lr=1e-3, betas=(0.8, 0.99)),
            "root": Path("data/demo"), "gain": np.float32(0.5), "shape": np.arange(3), "cls": TAAE,
            "odd": fractions.Fraction(1, 2), "nested": [{"p": Path("x")}],
        },
        "datamodule_hyper_parameters": {"train": Path("data/demo/train")},
    }
    assert unsafe_entries(ckpt)  # the bug this guards against: Lightning stores hparams as given
    left = make_checkpoint_safe(ckpt)
    assert left == ["hyper_parameters.odd (Fraction): stored as its repr"]
    torch.save(ckpt, tmp_path / "c.ckpt")
    back = torch.load(tmp_path / "c.ckpt", weights_only=True)
    hp = back["hyper_parameters"]
    assert hp["optimizer_g"] == {"class_path": "torch.optim.adamw.AdamW",
                                 "init_args": {"lr": 1e-3, "betas": (0.8, 0.99)}}
    assert hp["root"] == "data/demo" and hp["gain"] == 0.5 and torch.equal(hp["shape"], torch.arange(3))
    assert hp["cls"] == "taae.models.taae.TAAE" and hp["nested"] == [{"p": "x"}]
    assert back["datamodule_hyper_parameters"] == {"train": "data/demo/train"}


def test_taae_info_on_an_evil_checkpoint_refuses_in_one_line(tmp_path):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "taae", "info", "-c", str(evil)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode != 0 and not marker.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--trust-checkpoint" in lines[0] and "Traceback" not in proc.stderr
