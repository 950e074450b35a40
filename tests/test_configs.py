"""Every shipped YAML parses against the code, and the model configs build with the sizes they claim."""

from pathlib import Path

import pytest
import torch
import yaml

from taae.models import from_config
from taae.models.base import count_parameters
from taae.training.cli import TaaeCLI

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
RECIPE = CONFIGS / "taae/recipe.yaml"
DEMO = CONFIGS / "data/demo.yaml"
CPU = CONFIGS / "trainer/cpu.yaml"
# The quickstarts are overrides on a tiny recipe + demo data + CPU trainer (as the Makefile composes them).
QUICKSTARTS = [[CONFIGS / f"{family}/tiny.yaml", DEMO, CPU, CONFIGS / f"{family}/quickstart.yaml"]
               for family in ("taae", "rvqgan")]
# The causal quickstart: one more override on the TAAE quickstart (causality, run folder).
CAUSAL_TINY = [*QUICKSTARTS[0], CONFIGS / "taae/causal_tiny.yaml"]
# Composed experiments: each entry is the list of --config files, in order.
EXPERIMENTS = (
    [[p] for p in sorted((CONFIGS / "taae").glob("*.yaml"))
     if p.name not in ("finetune_wavlm.yaml", "quickstart.yaml", "causal_tiny.yaml")]
    + [[p] for p in sorted((CONFIGS / "rvqgan").glob("*.yaml")) if p.name != "quickstart.yaml"]
    + QUICKSTARTS
    + [CAUSAL_TINY]
    + [[RECIPE, p] for p in sorted((CONFIGS / "taae/ladder").glob("*.yaml"))]
    + [[RECIPE, CONFIGS / "taae/ladder/25m.yaml", CONFIGS / "taae/finetune_wavlm.yaml"]]
)
# Millions of generator parameters stated in the configs' comments and the README.
SIZES = {"25m": 26.9, "75m": 72.2, "240m": 236.1, "540m": 552.4, "950m": 955.4, "dac16k": 74.18}


def _id(paths):
    return "+".join(f"{p.parent.name}/{p.stem}" for p in paths)


class _ParseOnly(TaaeCLI):
    def instantiate_classes(self) -> None:  # type-check the YAML without building 950 M parameters
        pass


@pytest.mark.parametrize("paths", EXPERIMENTS, ids=_id)
def test_experiment_parses_with_the_cli(paths):
    args = [a for p in paths for a in ("--config", str(p))]
    if not any("data" in (yaml.safe_load(p.read_text()) or {}) for p in paths):
        args += ["--config", str(DEMO)]
    cli = _ParseOnly(args=args, run=False)
    assert cli.config["model"]["class_path"] == "taae.training.CodecModule"


@pytest.mark.parametrize("paths", EXPERIMENTS, ids=_id)
def test_experiment_builds_its_generator_with_the_stated_size(paths):
    with torch.device("meta"):
        model = from_config(*paths)
    assert model.sample_rate == 16000 and model.hop_length in (320, 640)
    stated = next((SIZES[p.stem] for p in reversed(paths) if p.stem in SIZES), None)
    if stated is not None:
        assert count_parameters(model) / 1e6 == pytest.approx(stated, rel=0.01)


@pytest.mark.parametrize("path", sorted((CONFIGS / "data").glob("*.yaml")), ids=lambda p: p.name)
def test_data_config_parses(path):
    cli = _ParseOnly(args=["--config", str(CONFIGS / "taae/tiny.yaml"), "--config", str(path)], run=False)
    assert cli.config["data"]["class_path"] in ("taae.data.AudioDataModule", "taae.data.SharDataModule")


def test_ddp_trainer_config_composes():
    paths = [CONFIGS / "taae/tiny.yaml", DEMO, CONFIGS / "trainer/cpu.yaml", CONFIGS / "trainer/ddp.yaml"]
    cli = _ParseOnly(args=[a for p in paths for a in ("--config", str(p))], run=False)
    assert cli.config["trainer"]["use_distributed_sampler"] is False
    assert cli.config["trainer"]["strategy"]["init_args"]["find_unused_parameters"] is True


def test_causal_tiny_is_the_quickstart_recipe_made_causal():
    # One budget, one recipe: the causal-vs-offline comparison means something only while the two stay in step.
    def parsed(paths):
        return _ParseOnly(args=[a for p in paths for a in ("--config", str(p))], run=False).config.as_dict()

    quickstart, causal = parsed(QUICKSTARTS[0]), parsed(CAUSAL_TINY)
    generator = causal["model"]["init_args"]["generator"]["init_args"]["config"]
    assert generator["causal"] is True and tuple(generator["window"]) == (63, 0)  # 2.56 s at 25 Hz (Table 11)
    offline = quickstart["model"]["init_args"]["generator"]["init_args"]["config"]
    assert offline["causal"] is False
    generator.update(causal=False, window=offline["window"])
    causal.pop("config"), quickstart.pop("config")  # the --config file list itself
    assert yaml.safe_dump(causal).replace("runs/causal_tiny", "runs/quickstart") == yaml.safe_dump(quickstart)
