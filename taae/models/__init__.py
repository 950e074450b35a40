"""Codec models. ``from_config(path)`` builds the generator a training YAML describes."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from torch import nn


def instantiate(spec: dict[str, Any], where: str = "config") -> Any:
    """Build ``{class_path: a.b.C, init_args: {...}}`` the way LightningCLI does, recursively for nested specs."""
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"{where}: expected a mapping with 'class_path' (and optional 'init_args'), got {spec!r}")
    unknown = set(spec) - {"class_path", "init_args", "dict_kwargs"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} next to class_path")
    module_name, _, class_name = spec["class_path"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{where}.class_path: cannot import {spec['class_path']!r} ({err})") from err
    args = {}
    for key, value in (spec.get("init_args") or {}).items():
        if isinstance(value, dict) and "class_path" in value:
            value = instantiate(value, f"{where}.init_args.{key}")
        elif isinstance(value, list) and value and all(isinstance(v, dict) and "class_path" in v for v in value):
            value = [instantiate(v, f"{where}.init_args.{key}[{i}]") for i, v in enumerate(value)]
        args[key] = value
    return cls(**args)


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


def from_config(path: str | Path) -> nn.Module:
    """Build the codec model described by a training YAML (``model.init_args.generator``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with path.open() as f:
        config = yaml.safe_load(f)
    return instantiate(generator_spec(config), f"{path}: model.init_args.generator")
