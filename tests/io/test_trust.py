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
from taae.errors import UntrustedFileError
from tests.codec.test_codec import tiny_model, write_checkpoint

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("verb", ["encode", "decode", "stream"])
def test_encode_decode_stream_refuse_the_nested_codec_module_in_one_line(evil_files, tmp_path, capsys, verb):
    # Bug on main: each of these loaded the codec through the allow-list that built CodecModule, running the payload.
    from taae.__main__ import main

    folder, ckpt, marker = evil_files
    for model in (folder, ckpt):
        code = main([verb, str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "-c", str(model)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "'extra'" in err[0] and not marker.exists(), err


def test_tokenize_refuses_the_nested_codec_module(evil_files, tmp_path):
    from taae.data.prepare import prepare
    from taae.jobs.tokenize import tokenize

    folder, ckpt, marker = evil_files
    (tmp_path / "src").mkdir()
    sf.write(tmp_path / "src" / "a.wav", np.zeros(3200, dtype="float32"), 16000)
    prepare(tmp_path / "src", tmp_path / "shar", progress=False)
    for model in (folder, ckpt):
        with pytest.raises(UntrustedFileError, match=REFUSAL):
            tokenize(str(tmp_path / "shar"), tmp_path / "tok", checkpoint=str(model), progress=False)
    assert not marker.exists()


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
    from taae.io.registry import CODEC_MODELS, instantiate, resolve_class

    assert {"taae.models.rvqgan.RVQGAN", "taae.models.taae.TAAE"} <= set(CODEC_MODELS)
    assert not [path for path in CODEC_MODELS if path.startswith(("taae.training", "taae.losses", "torch"))]
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
    with pytest.raises(ValueError, match=r"names a model with (more than )?\d+\.\d MB of weights but "
                                         r".*model.safetensors holds only"):
        Codec.load(folder)
    # a very deep one stops during its meta build, long before a million layers are made
    config["generator"]["init_args"]["config"].update(widths=[128], stem_width=128, depths=[1_000_000])
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"names a model with more than \d+\.\d MB of weights"):
        Codec.load(folder)


# -- a property test over loaders -------------------------------------------------------------------------------

def _class_paths() -> list[str]:
    """Class (and callable) paths importable from taae, torch and the standard library, dangerous ones first."""
    import builtins
    import inspect
    import pathlib
    import shutil
    import subprocess as sp

    import taae.training  # noqa: F401 -- imported for its classes (the rest of taae is imported by now)

    paths = ["taae.training.module.CodecModule", "taae.training.CodecModule", "os.system", "subprocess.Popen",
             "builtins.exec", "builtins.open", "runpy.run_path", "pickle.loads", "torch.load", "shutil.rmtree"]
    modules = [m for name, m in sorted(sys.modules.items()) if name == "taae" or name.startswith("taae.")]
    modules += [torch, torch.nn, torch.optim, torch.optim.lr_scheduler, torch.utils.data, os, sp, builtins,
                pathlib, shutil]
    for module in modules:
        for name, obj in vars(module).items():
            if inspect.isclass(obj) or inspect.isbuiltin(obj) or inspect.isfunction(obj):
                paths.append(f"{module.__name__}.{name}")
    return list(dict.fromkeys(paths))


def _payload_args(marker: Path, aux: Path, generator: dict) -> list[dict]:
    return [{"command": f"touch {marker}"}, {"args": ["touch", str(marker)]}, {"file": str(marker), "mode": "w"},
            {"f": str(aux), "weights_only": False}, {"path": str(marker)},
            evil_nested(generator, aux)["init_args"]["extra"]["init_args"], {}]


def _nodes(value, out):
    """Every mapping inside ``value`` (specs, init_args, the config), to insert nested specs at every level."""
    if isinstance(value, dict):
        out.append(value)
        for item in value.values():
            _nodes(item, out)
    elif isinstance(value, list):
        for item in value:
            _nodes(item, out)
    return out


def test_random_mutations_of_an_export_or_checkpoint_never_run_a_payload_nor_raise_a_traceback(tmp_path):
    # Bug on main: nested CodecModule specs ran aux.ckpt's payload, and constructors' TypeErrors / KeyErrors on odd
    # values escaped as tracebacks. Seeded, bounded: ~125 loads of a tiny model (every 4th also as a checkpoint).
    import random

    from taae.errors import USER_ERRORS

    marker = tmp_path / "pwned"
    folder = Codec(tiny_model()).export(tmp_path / "model")
    aux = _aux_checkpoint(folder / "aux.ckpt", marker)
    original = json.loads((folder / "config.json").read_text())
    ckpt = torch.load(write_checkpoint(tmp_path / "real.ckpt", tiny_model()), weights_only=True)
    paths = _class_paths()
    rng = random.Random(28)
    odd_values = [None, True, -1, 0, 3.5, float("nan"), "x" * 5, [], {}, [1, "a"], {"a": {"b": None}}, 2**70,
                  str(aux), str(marker)]
    outcomes = {"loaded": 0, "refused": 0}
    for example in range(100):
        config = copy.deepcopy(original)
        generator = config["generator"]
        for _ in range(rng.randint(1, 3)):
            kind = rng.random()
            nodes = _nodes(config, [])
            node = rng.choice(nodes)
            spec = {"class_path": rng.choice(paths[:10] if rng.random() < 0.4 else paths),
                    "init_args": rng.choice(_payload_args(marker, aux, original["generator"]))}
            if kind < 0.3:      # swap the generator's class path
                generator["class_path"] = spec["class_path"]
            elif kind < 0.7:    # a nested spec at a random level, under a new key or over an existing one
                key = rng.choice([*node, "extra", "generator", "init_weights_from"]) if node else "extra"
                node[key] = spec if rng.random() < 0.8 else [spec, spec]
            else:               # an odd value anywhere
                if node:
                    node[rng.choice(list(node))] = rng.choice(odd_values)
        (folder / "config.json").write_text(json.dumps(config))
        targets = [folder]
        if example % 4 == 0 and isinstance(config.get("generator"), dict):  # the same spec as ckpt["taae"]
            torch.save({**ckpt, "taae": {"generator": config["generator"]}}, tmp_path / "mutated.ckpt")
            targets.append(tmp_path / "mutated.ckpt")
        for target in targets:
            try:
                Codec.load(target)
                outcomes["loaded"] += 1
            except USER_ERRORS as err:
                outcomes["refused"] += 1
                assert str(err).strip(), f"example {example}: empty message"
            assert not marker.exists(), f"example {example} ran the payload: {json.dumps(config)[:2000]}"
    assert outcomes["refused"] > 70, outcomes


def test_the_trust_warning_names_the_setting_that_gave_trust(tmp_path):
    # Bug on main: trust given by model.init_args.trust_init_weights was reported as --trust-checkpoint.
    import fractions

    from taae.training import CodecModule

    path = write_checkpoint(tmp_path / "old.ckpt", tiny_model())
    data = torch.load(path, weights_only=True)
    data["hyper_parameters"] = {"ratio": fractions.Fraction(1, 3)}  # harmless, but not a plain type
    torch.save(data, path)
    with pytest.warns(UserWarning, match=r"trusted checkpoint \(model.init_args.trust_init_weights\)"):
        CodecModule(generator=tiny_model(), init_weights_from=str(path), trust_init_weights=True, num_audio_samples=0,
                    loss_weights={"mel": 1.0})
