"""The class allow-list: building codec models (and training parts) from ``{class_path, init_args}`` specs in files.

A spec in ``config.json`` or ``checkpoint["taae"]`` names a class. :func:`instantiate` builds only classes of an
explicit registry: :data:`CODEC_MODELS` (the codec generators) for files taae reads back. A path off the registry
is refused by name before anything is imported; a spec nested where the registered class's parameter takes no
module is refused, not built. Nothing in a file can extend a registry (:func:`allow_class` is code). Training YAMLs
given to ``train.py`` are the user's own experiment and go through jsonargparse as usual. :func:`model_spec` is the
inverse of :func:`instantiate` for a codec model. The threat model: ``docs/threat-model.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from taae.errors import ModelTooLarge, UntrustedFileError
from taae.io.checkpoints import first_line

__all__ = ["BUILD_ERRORS", "CODEC_METHODS", "CODEC_MODELS", "TRAINING_PARTS", "Buildable", "allow_class",
           "instantiate", "model_spec", "optimizer_factory", "resolve_class"]

SPEC_KEYS = ("class_path", "init_args", "dict_kwargs")
"""Keys of a class spec, as jsonargparse writes them."""

CODEC_METHODS = ("encode", "decode", "presets")
"""What a class must have to be loaded as a codec model from a checkpoint or an export (checked before it is built)."""

_TORCH_FACTORY_MODULES = ("torch.optim", "torch.optim.lr_scheduler")
_TORCH_FACTORY_BASES = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
_EXTRA_ALLOWED: dict[str, type] = {}


# -- the class registry -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Buildable:
    """A class a file may name, and which of its parameters take a module (one spec or a list of specs), from
    which registry. Every other parameter takes plain values only: a spec nested there is refused, not built."""

    class_path: str
    modules: tuple[tuple[str, str], ...] = ()
    """(parameter, registry name) pairs; the registry is a key of :data:`REGISTRIES`."""


def _registry(*entries: Buildable) -> dict[str, Buildable]:
    return {entry.class_path: entry for entry in entries}


CODEC_MODELS = _registry(
    Buildable("taae.models.taae.TAAE"),
    Buildable("taae.models.rvqgan.RVQGAN"),
)
"""The codec generators an export's ``config.json`` or a checkpoint's ``taae.generator`` may name. Their parts
(encoder, decoder, quantizer) are built from the ``config`` mapping, never from nested specs, so no parameter of
theirs takes a module."""

_DISCRIMINATORS = ("taae.models.discriminators.ComplexSTFTDiscriminator",
                   "taae.models.discriminators.MultiBandDiscriminator",
                   "taae.models.discriminators.MultiPeriodDiscriminator",
                   "taae.models.dac_discriminators.MultiBandDiscriminator",
                   "taae.models.dac_discriminators.MultiPeriodDiscriminator")
TRAINING_PARTS = _registry(
    *CODEC_MODELS.values(),
    *(Buildable(path) for path in _DISCRIMINATORS),
    Buildable("taae.models.discriminators.CombinedDiscriminator", (("discriminators", "discriminators"),)),
    Buildable("taae.losses.MultiScaleMelLoss"), Buildable("taae.losses.spectral.MultiScaleMelLoss"),
    Buildable("taae.losses.spectral.MultiResolutionSTFTLoss"), Buildable("taae.losses.spectral.WaveformL1Loss"),
    Buildable("taae.losses.PreEmphasisL1Loss"), Buildable("taae.losses.waveform.PreEmphasisL1Loss"),
    Buildable("taae.losses.WavLMFeatureLoss"), Buildable("taae.losses.perceptual.WavLMFeatureLoss"),
    Buildable("taae.training.balancer.GradientBalancer"),
)
"""What a training YAML the user runs (``benchmarks/train_step.py``) may build besides the generator. Never used for
files taae reads back: exports and checkpoints build :data:`CODEC_MODELS` only."""

REGISTRIES: dict[str, dict[str, Buildable]] = {
    "codec models": CODEC_MODELS,
    "training parts": TRAINING_PARTS,
    "discriminators": _registry(*(Buildable(path) for path in _DISCRIMINATORS)),
}


def allow_class(cls: type, registry: dict[str, Buildable] | None = None) -> type:
    """Register a codec model class (or add ``cls`` to ``registry``) so that files may name it; usable as a
    decorator. Only code can do this: nothing in a file extends a registry."""
    if not inspect.isclass(cls):
        raise TypeError(f"allow_class expects a class, got {cls!r}")
    path = f"{cls.__module__}.{cls.__qualname__}"
    _EXTRA_ALLOWED[path] = cls
    (CODEC_MODELS if registry is None else registry)[path] = Buildable(path)
    return cls


def _registry_name(registry: dict[str, Buildable]) -> str:
    return next((name for name, r in REGISTRIES.items() if r is registry), "registered classes")


def resolve_class(class_path: str, where: str = "class_path",
                  registry: dict[str, Buildable] | None = None) -> type:
    """The class that ``class_path`` names, if ``registry`` (default: :data:`CODEC_MODELS`) holds it.

    Only registered paths are imported: a foreign module, a taae function, a LightningModule such as
    ``CodecModule`` (which can read other files) are refused by name before anything is imported.

    Raises:
        UntrustedFileError: a class path off the registry, naming it.
        ValueError: a registered path that does not import (a broken install).
    """
    registry = CODEC_MODELS if registry is None else registry
    if not isinstance(class_path, str) or not class_path:
        raise ValueError(f"{where}: expected a dotted class path such as 'taae.models.taae.TAAE', got "
                         f"{str(class_path)[:80]!r}")
    if class_path not in registry:
        shown = class_path if len(class_path) <= 120 else class_path[:117] + "..."
        raise UntrustedFileError(f"{where}: class_path {shown!r} is not allowed; a file may build only "
                                 f"{_registry_name(registry)}: {', '.join(sorted(registry))}")
    if class_path in _EXTRA_ALLOWED:
        return _EXTRA_ALLOWED[class_path]
    module_name, _, name = class_path.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{where}: cannot import {class_path!r} ({err})") from err
    if not inspect.isclass(obj):
        raise ValueError(f"{where}: {class_path!r} is registered but is not a class")
    return obj


def _check_spec(spec: Any, where: str) -> None:
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"{where}: expected a mapping with 'class_path' (and optional 'init_args'), got "
                         f"{type(spec).__name__}")
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(map(str, unknown))[:5]} next to class_path (allowed: "
                         f"{list(SPEC_KEYS)})")
    for key in ("init_args", "dict_kwargs"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise ValueError(f"{where}.{key}: expected a mapping, got {type(spec[key]).__name__}")


def _is_spec(value: Any) -> bool:
    return isinstance(value, dict) and "class_path" in value


def _nested_spec(value: Any, where: str, depth: int = 0) -> str | None:
    """The key path of the first class spec anywhere inside ``value`` (None if there is none)."""
    if depth > 64:
        return where  # deeper than any config: refused like a spec rather than walked
    if _is_spec(value):
        return where
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nested_spec(item, f"{where}[{key!r}]" if not isinstance(value, dict) else f"{where}.{key}",
                             depth + 1)
        if found:
            return found
    return None


def _arguments(spec: dict[str, Any], where: str, entry: Buildable) -> dict[str, Any]:
    """``init_args`` and ``dict_kwargs`` of a spec; nested specs built only where ``entry`` says the parameter takes
    a module (from that parameter's registry), refused anywhere else."""
    modules = dict(entry.modules)
    args = {}
    for key, value in {**(spec.get("init_args") or {}), **(spec.get("dict_kwargs") or {})}.items():
        here = f"{where}.init_args.{key}"
        if key in modules and _is_spec(value):
            value = instantiate(value, here, registry=REGISTRIES[modules[key]])
        elif key in modules and isinstance(value, list) and value and all(_is_spec(v) for v in value):
            value = [instantiate(v, f"{here}[{i}]", registry=REGISTRIES[modules[key]]) for i, v in enumerate(value)]
        else:
            found = _nested_spec(value, here)
            if found:
                raise UntrustedFileError(f"{found}: a class spec where {entry.class_path.rpartition('.')[2]}'s "
                                         f"parameter {str(key)[:60]!r} takes no module; nested specs are not built")
        args[str(key)] = value
    return args


BUILD_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, ZeroDivisionError,
                RuntimeError, AssertionError, RecursionError, MemoryError)
"""What a constructor raises on arguments it cannot use; each is reported in one line naming the spec."""


def instantiate(spec: dict[str, Any], where: str = "config", requires: Iterable[str] = (),
                registry: dict[str, Buildable] | None = None) -> Any:
    """Build ``{class_path: a.b.C, init_args: {...}}`` the way LightningCLI does, from registered classes only.

    Args:
        spec: the class spec (``dict_kwargs`` are merged into ``init_args``, as jsonargparse does).
        where: where the spec came from (a file and key), for error messages.
        requires: attributes the class must have (e.g. a codec model's ``encode``, ``decode``, ``presets``),
            checked before anything is built.
        registry: the classes ``spec`` may name (default :data:`CODEC_MODELS`); nested specs are built only for the
            parameters the registry entry lists as taking modules.

    Raises:
        UntrustedFileError: a class path off the registry, or a spec nested where no module is taken.
        ValueError: a malformed spec, a class without the required attributes, or arguments it cannot use.
    """
    registry = CODEC_MODELS if registry is None else registry
    _check_spec(spec, where)
    cls = resolve_class(spec["class_path"], f"{where}.class_path", registry)
    missing = [name for name in requires if not callable(getattr(cls, name, None))]
    if missing:
        raise ValueError(f"{where}.class_path: {spec['class_path']!r} is not a codec model (it has no "
                         f"{', '.join(missing)})")
    args = _arguments(spec, where, registry[spec["class_path"]])
    try:
        return cls(**args)
    except (UntrustedFileError, ModelTooLarge):
        raise
    except BUILD_ERRORS as err:
        raise ValueError(f"{where}: cannot build {spec['class_path']} from init_args {sorted(args)[:8]}: "
                         f"{first_line(err)[:300]}") from err


def optimizer_factory(spec: dict[str, Any], where: str = "optimizer") -> Callable[[Any], Any]:
    """An ``OptimizerCallable`` / ``LRSchedulerCallable`` from a spec: ``factory(params_or_optimizer)``.

    Only ``torch.optim`` optimisers and ``torch.optim.lr_scheduler`` schedulers; arguments are plain values.
    """
    _check_spec(spec, where)
    class_path = spec["class_path"]
    module_name, _, name = str(class_path).rpartition(".")
    if module_name not in _TORCH_FACTORY_MODULES:
        raise UntrustedFileError(f"{where}.class_path: class_path {class_path!r} is not allowed; only torch.optim "
                                 "optimisers and torch.optim.lr_scheduler schedulers")
    cls = getattr(importlib.import_module(module_name), name, None)
    if not inspect.isclass(cls) or not issubclass(cls, _TORCH_FACTORY_BASES):
        raise ValueError(f"{where}.class_path: {class_path!r} is not an optimiser or LR scheduler")
    kwargs = _arguments(spec, where, Buildable(class_path))
    return functools.partial(cls, **kwargs)


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """The inverse of :func:`instantiate` for a codec model: ``{class_path, init_args: {config: {...}}}``.

    Works for any model whose constructor takes its config dataclass (TAAE, RVQGAN); None otherwise.
    """
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return None
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    return {"class_path": f"{type(model).__module__}.{type(model).__qualname__}", "init_args": {"config": values}}
