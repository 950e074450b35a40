"""Trust comes only from the user (issue 28): no file a loader reads can name a class that reads another file, turn
trust on, or run a pickled payload; every refusal is one line naming the class or key refused."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from taae.codec import Codec
from taae.safety import UntrustedFileError
from tests.test_codec import tiny_model, write_checkpoint

ROOT = Path(__file__).resolve().parents[1]


class _TouchesMarker:
    """A pickled payload: unpickling it fully creates ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def _aux_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint whose pickle runs the payload when loaded with full unpickling (trust on)."""
    model = tiny_model()
    torch.save({"state_dict": {f"generator.{k}": v for k, v in model.state_dict().items()},
                "payload": _TouchesMarker(marker)}, path)
    return path


def evil_nested(generator: dict, aux: Path) -> dict:
    """The issue's spec: a CodecModule nested under an extra key of the generator's init_args, asking to load
    ``aux`` with trust turned on by the file itself."""
    spec = copy.deepcopy(generator)
    spec["init_args"]["extra"] = {"class_path": "taae.training.module.CodecModule",
                                  "init_args": {"generator": copy.deepcopy(generator), "init_weights_from": str(aux),
                                                "trust_init_weights": True, "loss_weights": {"mel": 1.0}}}
    return spec


@pytest.fixture
def evil_files(tmp_path):
    """(export folder, checkpoint, marker) whose generator specs nest the CodecModule that loads ``aux.ckpt``."""
    marker = tmp_path / "pwned"
    folder = Codec(tiny_model()).export(tmp_path / "model")
    aux = _aux_checkpoint(folder / "aux.ckpt", marker)
    config = json.loads((folder / "config.json").read_text())
    config["generator"] = evil_nested(config["generator"], aux)
    (folder / "config.json").write_text(json.dumps(config))
    ckpt = write_checkpoint(tmp_path / "evil.ckpt", tiny_model())
    data = torch.load(ckpt, weights_only=True)
    data["taae"]["generator"] = evil_nested(data["taae"]["generator"], aux)
    torch.save(data, ckpt)
    return folder, ckpt, marker


REFUSAL = r"init_args\.extra(\.class_path)?: (class_path 'taae\.training\.module\.CodecModule' is not allowed|" \
          r"a class spec where TAAE's parameter 'extra' takes no module)"


def test_codec_load_refuses_the_nested_codec_module(evil_files):
    # Bug on main: CodecModule was allow-listed (any taae nn.Module) and nested specs were built, so
    # trust_init_weights from the file unpickled aux.ckpt and ran its payload.
    folder, ckpt, marker = evil_files
    for path in (folder, folder / "config.json", ckpt):
        with pytest.raises(UntrustedFileError, match=REFUSAL) as info:
            Codec.load(path)
        assert "\n" not in str(info.value)
        assert not marker.exists()


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "taae", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)


def test_cli_commands_refuse_the_nested_codec_module_in_one_line(evil_files, tmp_path):
    # Bug on main: `taae info` / `taae export` ran the payload (with a warning naming --trust-checkpoint).
    folder, ckpt, marker = evil_files
    for args in (["info", "-c", str(folder)], ["export", "-c", str(ckpt), str(tmp_path / "out")]):
        proc = _cli(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and not marker.exists(), proc.stderr
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "CodecModule" in lines[0] or "'extra'" in lines[0]
        assert "--trust-checkpoint" not in lines[0]


def test_evaluate_refuses_the_nested_codec_module(evil_files, tmp_path):
    folder, _, marker = evil_files
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "a.wav", np.random.default_rng(0).uniform(-0.3, 0.3, 16000).astype("float32"), 16000)
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--checkpoint", str(folder), "--data",
                           str(data), "--out", str(tmp_path / "eval")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode != 0 and not marker.exists(), proc.stderr
    assert "Traceback" not in proc.stderr and "'extra'" in proc.stderr.strip().splitlines()[-1], \
        proc.stderr


def test_only_registered_codec_models_are_built_from_files():
    from taae.safety import CODEC_MODELS, instantiate, resolve_class

    assert sorted(CODEC_MODELS) == ["taae.models.rvqgan.RVQGAN", "taae.models.taae.TAAE"]
    for path in ("taae.training.module.CodecModule", "taae.training.CodecModule",
                 "taae.models.discriminators.CombinedDiscriminator", "taae.losses.MultiScaleMelLoss"):
        with pytest.raises(UntrustedFileError, match="is not allowed"):
            resolve_class(path)
    # a spec nested inside the config mapping is refused too, not handed to the constructor
    spec = {"class_path": "taae.models.taae.TAAE",
            "init_args": {"config": {"presets": {"x": {"class_path": "taae.models.taae.TAAE"}}}}}
    with pytest.raises(UntrustedFileError, match=r"config\.init_args\.config\.presets\.x: a class spec"):
        instantiate(spec)


def test_a_config_naming_a_huge_model_is_refused_before_allocation(tmp_path):
    # Bug on main: the model (here ~0.4 GB of weights) was allocated before the weights file was read.
    folder = Codec(tiny_model()).export(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["generator"]["init_args"]["config"].update(widths=[128 * 16], stem_width=128 * 16, depths=[2])
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"names a model with \d+\.\d MB of weights but .*model.safetensors holds "
                                         r"only"):
        Codec.load(folder)
