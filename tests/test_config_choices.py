"""Experiment choices live in the YAML: every shipped training recipe (a config whose ``model`` is CodecModule) sets
what the code only defaults, so that the YAML alone says how a run was trained (``--print_config`` shows it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CHOICES = ("optimizer_g", "optimizer_d", "loss_weights", "grad_clip_g", "grad_clip_d")
"""Keys whose code defaults (DEFAULT_ADAMW, DEFAULT_LOSS_WEIGHTS, DAC's clip norms) a recipe must not lean on."""


def recipes() -> list[Path]:
    found = []
    for path in sorted(CONFIGS.rglob("*.yaml")):
        model = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
        if str(model.get("class_path", "")).endswith("CodecModule"):
            found.append(path)
    return found


def test_there_are_recipes_to_check():
    assert {"tiny.yaml", "recipe.yaml"} <= {p.name for p in recipes()}


@pytest.mark.parametrize("path", recipes(), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_a_recipe_sets_its_experiment_choices(path):
    args = yaml.safe_load(path.read_text())["model"].get("init_args") or {}
    missing = [key for key in CHOICES if key not in args]
    assert not missing, f"{path.relative_to(CONFIGS)}: model.init_args lacks {missing}"


def test_the_taae_recipe_states_its_mel_loss():
    args = yaml.safe_load((CONFIGS / "taae" / "recipe.yaml").read_text())["model"]["init_args"]
    assert args["mel_loss"]["init_args"]["window_lengths"][0] == 32  # DAC's seven scales, written out
