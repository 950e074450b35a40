"""Codec models. ``from_config(path)`` builds the generator a training YAML describes (registry-checked,
:mod:`taae.io.registry`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from torch import nn

from taae.io.registry import instantiate

__all__ = ["from_config", "generator_spec"]


def generator_spec(config: dict[str, Any]) -> dict[str, Any]:
    """The ``class_path``/``init_args`` of the generator inside a training config (or a bare generator spec)."""
    if "class_path" in config and "model" not in config:
        if config["class_path"].endswith("CodecModule"):
            return config["init_args"]["generator"]
        return config
    try:
        return config["model"]["init_args"]["generator"]
    except (KeyError, TypeError) as err:
        raise ValueError("config has no model.init_args.generator section") from err


def _merge(base: dict, update: dict) -> dict:
    """Nested mappings merge key by key; anything else in ``update`` replaces (as several ``--config`` files do)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_config(*paths: str | Path) -> nn.Module:
    """Build the codec model described by one or more training YAMLs (``model.init_args.generator``).

    Several files compose left to right like ``train.py --config A --config B``:
    ``from_config("configs/taae/recipe.yaml", "configs/taae/ladder/240m.yaml")``.
    """
    if not paths:
        raise ValueError("from_config needs at least one YAML path")
    config: dict[str, Any] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        with path.open() as f:
            config = _merge(config, yaml.safe_load(f) or {})
    where = " + ".join(str(p) for p in paths)
    return instantiate(generator_spec(config), f"{where}: model.init_args.generator")
