"""Trust boundaries: loading checkpoints without running their code, and building classes from a registry.

Two things in a file can run code when taae reads it:

- **Pickle.** A ``.ckpt`` is a pickle; ``torch.load(weights_only=False)`` calls whatever ``__reduce__`` it holds.
  :func:`load_checkpoint` always loads with ``weights_only=True`` (tensors, containers and plain values only) and
  unpickles fully only when the caller passes ``trust=True`` (``--trust-checkpoint`` on the command line), with a
  warning. What taae writes into a checkpoint is kept loadable the safe way by :func:`make_checkpoint_safe`.
- **Class paths.** A ``{class_path, init_args}`` spec in ``config.json`` or ``checkpoint["taae"]`` names a class.
  :func:`instantiate` builds only classes of an explicit registry: :data:`CODEC_MODELS` (the codec generators)
  for files taae reads back. A path off the registry is refused by name before anything is imported; a spec
  nested where the registered class's parameter takes no module is refused, not built. Nothing in a file can
  extend a registry or turn trust on (:func:`allow_class` and ``trust=True`` are code). Training YAMLs given to
  ``train.py`` are the user's own experiment and go through jsonargparse as usual.

The whole threat model (what a loaded file may cause and what it may not) is ``docs/threat-model.md``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import inspect
import pickle
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

__all__ = [
    "TRUST_FLAG",
    "UntrustedFileError",
    "BUILD_ERRORS",
    "CODEC_MODELS",
    "TRAINING_PARTS",
    "Buildable",
    "ModelTooLarge",
    "allow_class",
    "check_resumable",
    "import_class",
    "instantiate",
    "load_checkpoint",
    "make_checkpoint_safe",
    "optimizer_factory",
    "resolve_class",
    "unsafe_entries",
]

TRUST_FLAG = "--trust-checkpoint"
"""The command-line flag (``trust=True`` in Python) that allows full unpickling."""

SPEC_KEYS = ("class_path", "init_args", "dict_kwargs")
"""Keys of a class spec, as jsonargparse writes them."""

_TORCH_FACTORY_MODULES = ("torch.optim", "torch.optim.lr_scheduler")
_TORCH_FACTORY_BASES = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
_EXTRA_ALLOWED: dict[str, type] = {}


class ModelTooLarge(ValueError):
    """A file names a model larger than the weights it holds; refused before the model is allocated."""


class UntrustedFileError(ValueError):
    """A file asks for code to run (a pickled global, a class path off the registry, a nested spec); nothing was run."""


# -- checkpoints ---------------------------------------------------------------------------------------------

def load_checkpoint(path: str | Path, trust: bool = False, map_location: Any = "cpu",
                    trust_hint: str = f"pass {TRUST_FLAG} (trust=True in Python)",
                    trust_source: str = TRUST_FLAG) -> Any:
    """``torch.load`` a checkpoint without running code from it, unless ``trust``.

    Args:
        path: a file written by ``torch.save`` (a Lightning ``.ckpt``, a state dict).
        trust: unpickle fully when the safe load refuses the file (it can then run any code in it); warns.
        map_location: as in ``torch.load``.
        trust_hint: how the caller's user turns ``trust`` on, for the refusal message.
        trust_source: what turned ``trust`` on, for the warning (the user's flag or setting, never a file).

    Raises:
        FileNotFoundError: no such file.
        UntrustedFileError: the file holds pickled objects the safe load refuses (named) and ``trust`` is off.
        ValueError: the file is not a readable checkpoint (truncated, corrupt, not a torch file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = _unsafe_globals(path, err)
        if not unsafe:
            raise ValueError(f"cannot read checkpoint {path}: {_first_line(err)}") from err
        if not trust:
            raise UntrustedFileError(
                f"{path} holds pickled objects that only full unpickling restores ({', '.join(unsafe)}); "
                f"unpickling can run any code, so it was not loaded. If you trust this file, {trust_hint}"
            ) from None
        warnings.warn(f"{path}: fully unpickling a trusted checkpoint ({trust_source}); it holds "
                      f"{', '.join(unsafe)}", stacklevel=2)
        return _load_trusted(path, map_location)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {_first_line(err)}") from err


def check_resumable(path: str | Path) -> None:
    """Refuse, in one line, a checkpoint to resume from that the safe load would refuse (``train.py --ckpt_path``).

    Only the pickle is read (no tensors), and nothing in it is run. Training never unpickles fully: a checkpoint
    written by taae always loads safely (:func:`make_checkpoint_safe`).

    Raises:
        UntrustedFileError: the file holds pickled objects beyond tensors and plain values, named.
        ValueError: the file is not a readable checkpoint.
    """
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError, pickle.UnpicklingError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {_first_line(err)}") from err
    if unsafe:
        raise UntrustedFileError(f"--ckpt_path {path} holds pickled objects that only full unpickling restores "
                                 f"({', '.join(sorted(unsafe))}); training resumes only from checkpoints that load "
                                 "safely, so nothing was run")


def _load_trusted(path: Path, map_location: Any) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError, pickle.UnpicklingError,
            AttributeError, ModuleNotFoundError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {_first_line(err)}") from err


def _unsafe_globals(path: Path, err: Exception) -> list[str]:
    """The globals the safe unpickler refused (empty if ``err`` is about something else, e.g. a corrupt file)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 -- old torch, or not a zip checkpoint: fall back to the message
        found = []
    marker = "Unsupported global: GLOBAL "
    if not found and marker in str(err):
        found = [str(err).split(marker, 1)[1].split()[0]]
    return sorted(found)


def _first_line(err: BaseException) -> str:
    """The informative line of an error: torch wraps safe-load failures in a paragraph about its defaults."""
    text = str(err).strip()
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    return text.splitlines()[0] if text else type(err).__name__


# -- what taae writes into a checkpoint ----------------------------------------------------------------------

_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes, bytearray, torch.Tensor, torch.dtype,
                 torch.device, torch.Size)
_CHECKPOINT_HPARAMS = ("hyper_parameters", "datamodule_hyper_parameters")


def plain(value: Any, where: str = "value", replaced: list[str] | None = None) -> Any:
    """``value`` in types that ``torch.load(weights_only=True)`` restores.

    Paths become strings, numpy values Python numbers or tensors, enums their value, dataclasses dicts,
    ``functools.partial`` a ``{class_path, init_args}`` spec, classes and functions their dotted name; anything
    else its ``repr`` (its key path is appended to ``replaced``).
    """
    if isinstance(value, _PLAIN_LEAVES):
        return value
    if isinstance(value, dict):
        out = {k if isinstance(k, (str, int)) else str(k): plain(v, f"{where}.{k}", replaced)
               for k, v in value.items()}
        return OrderedDict(out) if isinstance(value, OrderedDict) else out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v, f"{where}[{i}]", replaced) for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else set(items) if isinstance(value, (set, frozenset)) \
            else items
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, enum.Enum):
        return plain(value.value, where, replaced)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value), where, replaced)
    if isinstance(value, functools.partial):
        return {"class_path": _dotted(value.func), "init_args": plain(dict(value.keywords), where, replaced)}
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return _dotted(value)
    if replaced is not None:
        replaced.append(f"{where} ({type(value).__name__})")
    return repr(value)


def _dotted(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def unsafe_entries(value: Any, where: str = "checkpoint") -> list[str]:
    """Key paths of the objects in ``value`` that ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(value, _PLAIN_LEAVES):
        return []
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in unsafe_entries(v, f"{where}[{k!r}]")]
    if isinstance(value, (list, tuple, set)):
        return [e for i, v in enumerate(value) for e in unsafe_entries(v, f"{where}[{i}]")]
    return [f"{where} ({type(value).__module__}.{type(value).__qualname__})"]


def make_checkpoint_safe(checkpoint: dict[str, Any]) -> list[str]:
    """Turn a checkpoint's hyper-parameters into plain types, in place, so that it loads with
    ``weights_only=True``; returns what is still unsafe elsewhere (key paths), for a warning.

    Lightning stores ``hparams`` as given: a module built in Python with ``functools.partial`` optimisers or
    ``Path`` data roots would otherwise need full unpickling to read back. Optimiser, scheduler, loop and
    callback states are Lightning's own and already plain.
    """
    replaced: list[str] = []
    for key in _CHECKPOINT_HPARAMS:
        if key in checkpoint:
            checkpoint[key] = plain(checkpoint[key], key, replaced)
    return [f"{entry}: stored as its repr" for entry in replaced] + unsafe_entries(checkpoint)


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


def import_class(class_path: str, where: str = "class_path") -> type:
    """The registered codec model class a dotted path names (the older name of :func:`resolve_class`)."""
    return resolve_class(class_path, where)


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
                         f"{_first_line(err)[:300]}") from err


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
