"""Every shipped YAML parses against the code, and the model configs build with the sizes they state.

A size is written once, in its YAML's comment ("26.9 M parameters"); these tests hold the comment to the model
it builds (the stated figure must be the true count rounded to the digits given; "~" marks a rough figure).
"""

import re
from pathlib import Path

import pytest
import torch
import yaml

from taae.models import from_config
from taae.models.base import count_parameters
from taae.scaling.ladder import load_ladder
from taae.training.cli import TaaeCLI
from taae.training.rundir import explicit_run_dirs

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
RECIPE = CONFIGS / "taae/recipe.yaml"
RVQGAN_RECIPE = CONFIGS / "rvqgan/recipe.yaml"
DEMO = CONFIGS / "data/demo.yaml"
CPU = CONFIGS / "trainer/cpu.yaml"
# The quickstarts are overrides on a tiny recipe + demo data + CPU trainer (as the Makefile composes them).
QUICKSTARTS = [[CONFIGS / f"{family}/tiny.yaml", DEMO, CPU, CONFIGS / f"{family}/quickstart.yaml"]
               for family in ("taae", "rvqgan")]
# The causal quickstart: one more override on the TAAE quickstart (causality, run folder).
CAUSAL_TINY = [*QUICKSTARTS[0], CONFIGS / "taae/causal_tiny.yaml"]
LADDERS = sorted((CONFIGS / "ladder").glob("*.yaml"))
LADDER_FILES = [p for p in LADDERS if "families" in (yaml.safe_load(p.read_text()) or {})]
TAAE_SIZES = sorted((CONFIGS / "taae/ladder").glob("*.yaml"))
RVQGAN_SIZES = sorted((CONFIGS / "rvqgan/ladder").glob("*.yaml"))


def _rungs():
    return [(ladder.name, rung) for path in LADDER_FILES for ladder in [load_ladder(path.relative_to(ROOT))]
            for rung in ladder.rungs]


# Composed experiments: each entry is the list of --config files, in order.
EXPERIMENTS = (
    [[p] for p in sorted((CONFIGS / "taae").glob("*.yaml"))
     if p.name not in ("finetune_wavlm.yaml", "quickstart.yaml", "causal_tiny.yaml", "perceptual_from_start.yaml")]
    + [[RVQGAN_RECIPE], [CONFIGS / "rvqgan/tiny.yaml"]]
    + [[RVQGAN_RECIPE, CONFIGS / f"rvqgan/{name}.yaml"] for name in ("400bps", "700bps", "1000bps", "dac16k")]
    + QUICKSTARTS
    + [CAUSAL_TINY]
    + [[*QUICKSTARTS[0], CONFIGS / "taae/perceptual_from_start.yaml"]]
    + [[RECIPE, p] for p in TAAE_SIZES]
    + [[RVQGAN_RECIPE, p] for p in RVQGAN_SIZES]
    + [[RVQGAN_RECIPE, CONFIGS / "rvqgan/ladder/75m.yaml", CONFIGS / "rvqgan/700bps.yaml"]]
    + [[RECIPE, CONFIGS / "taae/ladder/25m.yaml", CONFIGS / "taae/finetune_wavlm.yaml"]]
    + [[CONFIGS / "taae/tiny.yaml", CONFIGS / "trainer/cpu.yaml", CONFIGS / "trainer/ddp.yaml"]]
    + [[ROOT / p for p in rung.configs] for _, rung in _rungs()]
)


def _id(paths):
    return "+".join(f"{p.parent.name}/{p.stem}" for p in paths)


def stated_parameters(path: Path) -> tuple[float, float] | None:
    """(count, tolerance) from the leading comment of a YAML: "26.9 M parameters" → (26.9e6, 0.05e6)."""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").strip())
    match = re.search(r"(?<![~\d.])(\d+(?:\.(\d+))?) M (?:generator )?parameters", " ".join(header))
    if match is None:
        return None
    digits = len(match.group(2) or "")
    return float(match.group(1)) * 1e6, 0.5 * 10.0 ** -digits * 1e6


def rung_size(name: str) -> float:
    """A rung's name as a parameter count: "25m" → 25e6, "0.6m" → 0.6e6."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)m", name)
    assert match, f"rung name {name!r} is not a size such as 25m or 0.6m"
    return float(match.group(1)) * 1e6


def _build(paths):
    with torch.device("meta"):
        return from_config(*paths)


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
    # One run-folder mechanism: trainer.default_root_dir places every log and checkpoint (taae.training.rundir).
    assert explicit_run_dirs(cli.config.trainer) == []


@pytest.mark.parametrize("paths", EXPERIMENTS, ids=_id)
def test_experiment_builds_its_generator_with_the_stated_size(paths):
    model = _build(paths)
    assert model.sample_rate == 16000 and model.hop_length in (320, 640)
    stated = stated_parameters(paths[-1])
    if stated is not None:
        count, tolerance = stated
        assert abs(count_parameters(model) - count) <= tolerance, f"{paths[-1]} states {count / 1e6} M"


def test_only_trainer_configs_name_loggers_and_callbacks():
    # Overlays (the quickstarts, causal_tiny, ladder files) hold data, budget and the run's root folder; a logger or
    # callback list restated there replaces the trainer config's and pins its folders for every later composition.
    restating = [str(p.relative_to(ROOT)) for p in sorted(CONFIGS.rglob("*.yaml")) if p.parent.name != "trainer"
                 and {"logger", "callbacks"} & set((yaml.safe_load(p.read_text()) or {}).get("trainer") or {})]
    assert restating == []


def test_every_shipped_yaml_is_composed_by_some_test():
    tested = {p.resolve() for paths in EXPERIMENTS for p in paths}
    tested |= {p.resolve() for p in (CONFIGS / "data").glob("*.yaml")} | {p.resolve() for p in LADDERS}
    untested = sorted(str(p.relative_to(ROOT)) for p in CONFIGS.rglob("*.yaml") if p.resolve() not in tested)
    assert not untested


@pytest.mark.parametrize("ladder,rung", _rungs(), ids=lambda v: v if isinstance(v, str) else v.key)
def test_ladder_rungs_have_their_stated_size(ladder, rung):
    size_file = next(p for p in reversed(rung.configs) if stated_parameters(ROOT / p) is not None)
    count, tolerance = stated_parameters(ROOT / size_file)
    assert abs(count_parameters(_build([ROOT / p for p in rung.configs])) - count) <= tolerance


@pytest.mark.parametrize("path", LADDER_FILES, ids=lambda p: p.stem)
def test_rvqgan_rungs_match_the_taae_rungs_and_their_names_within_5_percent(path):
    ladder = load_ladder(path.relative_to(ROOT))
    counts = {(r.family, r.name): count_parameters(_build([ROOT / p for p in r.configs])) for r in ladder.rungs}
    names = {name for family, name in counts if family == "rvqgan"}
    assert names and names <= {name for family, name in counts if family == "taae"}
    for name in names:
        assert counts["rvqgan", name] == pytest.approx(counts["taae", name], rel=0.05)
        assert counts["rvqgan", name] == pytest.approx(rung_size(name), rel=0.05)


@pytest.mark.parametrize("path", RVQGAN_SIZES, ids=lambda p: p.stem)
def test_rvqgan_ladder_sizes_equal_their_names_within_5_percent(path):
    assert count_parameters(_build([RVQGAN_RECIPE, path])) == pytest.approx(rung_size(path.stem), rel=0.05)


def test_rvqgan_recipe_serves_the_taae_bitrates_from_one_model():
    model = _build([RVQGAN_RECIPE])
    presets = model.presets()
    assert [presets[f"{bps}bps"].tokens_per_frame for bps in (400, 700, 1000)] == [4, 7, 10]
    assert all(presets[f"{bps}bps"].bitrate == bps for bps in (400, 700, 1000))


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
    assert offline["causal"] is False and generator["head"] == "patch"  # the iSTFT head cannot stream
    generator.update(causal=False, window=offline["window"], head=offline["head"])
    causal.pop("config"), quickstart.pop("config")  # the --config file list itself
    assert yaml.safe_dump(causal).replace("runs/causal_tiny", "runs/quickstart") == yaml.safe_dump(quickstart)
