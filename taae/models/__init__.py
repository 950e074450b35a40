"""Codec models. ``from_config(path)`` builds the generator a training YAML describes."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import yaml
from torch import nn


def import_class(class_path: str, where: str = "class_path") -> Any:
    """The object a dotted ``a.b.C`` path names; ValueError naming ``where`` if it cannot be imported."""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{where}: cannot import {class_path!r} ({err})") from err


def instantiate(spec: dict[str, Any], where: str = "config") -> Any:
    """Build ``{class_path: a.b.C, init_args: {...}}`` the way LightningCLI does, recursively for nested specs."""
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"{where}: expected a mapping with 'class_path' (and optional 'init_args'), got {spec!r}")
    unknown = set(spec) - {"class_path", "init_args", "dict_kwargs"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} next to class_path")
    cls = import_class(spec["class_path"], f"{where}.class_path")
    args = {}
    for key, value in (spec.get("init_args") or {}).items():
        if isinstance(value, dict) and "class_path" in value:
            value = instantiate(value, f"{where}.init_args.{key}")
        elif isinstance(value, list) and value and all(isinstance(v, dict) and "class_path" in v for v in value):
            value = [instantiate(v, f"{where}.init_args.{key}[{i}]") for i, v in enumerate(value)]
        args[key] = value
    return cls(**args)


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """The inverse of ``instantiate`` for a codec model: ``{class_path, init_args: {config: {...}}}``.

    Works for any model whose constructor takes its config dataclass (TAAE, RVQGAN); None otherwise.
    """
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return None
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    return {"class_path": f"{type(model).__module__}.{type(model).__qualname__}", "init_args": {"config": values}}


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
