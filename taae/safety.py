"""Trust boundaries: loading checkpoints without running their code, and building classes from an allow-list.

Two things in a file can run code when taae reads it:

- **Pickle.** A ``.ckpt`` is a pickle; ``torch.load(weights_only=False)`` calls whatever ``__reduce__`` it holds.
  :func:`load_checkpoint` always loads with ``weights_only=True`` (tensors, containers and plain values only) and
  unpickles fully only when the caller passes ``trust=True`` (``--trust-checkpoint`` on the command line), with a
  warning. What taae writes into a checkpoint is kept loadable the safe way by :func:`make_checkpoint_safe`.
- **Class paths.** A ``{class_path, init_args}`` spec in ``config.json`` or ``checkpoint["taae"]`` names a callable.
  :func:`instantiate` builds only classes on the allow-list (:func:`resolve_class`): ``nn.Module`` classes defined
  in taae itself, ``torch.optim`` optimisers and ``torch.optim.lr_scheduler`` schedulers, plus classes a program
  adds with :func:`allow_class`. The module is checked by name *before* it is imported, so a spec cannot even
  import foreign code. Training YAMLs given to ``train.py`` are the user's own experiment and go through
  jsonargparse as usual; this boundary is for files taae reads back (exports, checkpoints).
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
from torch import nn

__all__ = [
    "TRUST_FLAG",
    "UntrustedFileError",
    "allow_class",
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

_TAAE_PREFIX = "taae."
_TORCH_FACTORY_MODULES = ("torch.optim", "torch.optim.lr_scheduler")
_TORCH_FACTORY_BASES = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)
_EXTRA_ALLOWED: dict[str, type] = {}


class UntrustedFileError(ValueError):
    """A file asks for code to run (a pickled global, a class path off the allow-list); nothing was run."""


# -- checkpoints ---------------------------------------------------------------------------------------------

def load_checkpoint(path: str | Path, trust: bool = False, map_location: Any = "cpu",
                    trust_hint: str = f"pass {TRUST_FLAG} (trust=True in Python)") -> Any:
    """``torch.load`` a checkpoint without running code from it, unless ``trust``.

    Args:
        path: a file written by ``torch.save`` (a Lightning ``.ckpt``, a state dict).
        trust: unpickle fully when the safe load refuses the file (it can then run any code in it); warns.
        map_location: as in ``torch.load``.
        trust_hint: how the caller's user turns ``trust`` on, for the refusal message.

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
        warnings.warn(f"{path}: fully unpickling a trusted checkpoint ({TRUST_FLAG}); it holds "
                      f"{', '.join(unsafe)}", stacklevel=2)
        return _load_trusted(path, map_location)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {_first_line(err)}") from err


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


# -- the class allow-list ------------------------------------------------------------------------------------

def allow_class(cls: type) -> type:
    """Add a class to the allow-list of :func:`instantiate` (usable as a decorator). Only code can do this."""
    if not inspect.isclass(cls):
        raise TypeError(f"allow_class expects a class, got {cls!r}")
    _EXTRA_ALLOWED[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


def _allowed_module(module_name: str) -> bool:
    return module_name == "taae" or module_name.startswith(_TAAE_PREFIX) or module_name in _TORCH_FACTORY_MODULES


def resolve_class(class_path: str, where: str = "class_path") -> type:
    """The allow-listed class that ``class_path`` names.

    Allowed: ``nn.Module`` subclasses defined in taae (not merely imported into a taae module), ``torch.optim``
    optimisers, ``torch.optim.lr_scheduler`` schedulers, and classes added with :func:`allow_class`.

    Raises:
        UntrustedFileError: anything else (a function such as ``os.system``, a foreign module), naming it;
            foreign modules are not even imported.
        ValueError: an allowed module that has no such class.
    """
    if not isinstance(class_path, str) or not class_path:
        raise ValueError(f"{where}: expected a dotted class path such as 'taae.models.taae.TAAE', got "
                         f"{class_path!r}")
    if class_path in _EXTRA_ALLOWED:
        return _EXTRA_ALLOWED[class_path]
    module_name, _, name = class_path.rpartition(".")
    refusal = (f"{where}: class_path {class_path!r} is not allowed; taae builds only its own nn.Module classes, "
               "torch.optim optimisers and torch.optim.lr_scheduler schedulers from a file")
    if not _allowed_module(module_name):
        raise UntrustedFileError(refusal)
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"{where}: cannot import {class_path!r} ({err})") from err
    if not inspect.isclass(obj):
        raise UntrustedFileError(refusal)
    own_module = obj.__module__ == "taae" or obj.__module__.startswith(_TAAE_PREFIX)
    if own_module and issubclass(obj, nn.Module):
        return obj
    if module_name in _TORCH_FACTORY_MODULES and issubclass(obj, _TORCH_FACTORY_BASES):
        return obj
    raise UntrustedFileError(refusal)


def import_class(class_path: str, where: str = "class_path") -> type:
    """The allow-listed class a dotted path names (the older name of :func:`resolve_class`)."""
    return resolve_class(class_path, where)


def _check_spec(spec: Any, where: str) -> None:
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"{where}: expected a mapping with 'class_path' (and optional 'init_args'), got {spec!r}")
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} next to class_path (allowed: {list(SPEC_KEYS)})")
    for key in ("init_args", "dict_kwargs"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise ValueError(f"{where}.{key}: expected a mapping, got {type(spec[key]).__name__}")


def _is_spec(value: Any) -> bool:
    return isinstance(value, dict) and "class_path" in value


def _arguments(spec: dict[str, Any], where: str) -> dict[str, Any]:
    """``init_args`` and ``dict_kwargs`` of a spec, nested specs built (allow-listed too)."""
    args = {}
    for key, value in {**(spec.get("init_args") or {}), **(spec.get("dict_kwargs") or {})}.items():
        if _is_spec(value):
            value = instantiate(value, f"{where}.init_args.{key}")
        elif isinstance(value, list) and value and all(_is_spec(v) for v in value):
            value = [instantiate(v, f"{where}.init_args.{key}[{i}]") for i, v in enumerate(value)]
        args[key] = value
    return args


def instantiate(spec: dict[str, Any], where: str = "config", requires: Iterable[str] = ()) -> Any:
    """Build ``{class_path: a.b.C, init_args: {...}}`` the way LightningCLI does, recursively, allow-listed.

    Args:
        spec: the class spec (``dict_kwargs`` are merged into ``init_args``, as jsonargparse does).
        where: where docs/decisions.md came from (a file and key), for error messages.
        requires: attributes the class must have (e.g. a codec model's ``encode``, ``decode``, ``presets``),
            checked before anything is built.

    Raises:
        UntrustedFileError: a class path off the allow-list (see :func:`resolve_class`), here or nested.
        ValueError: a malformed spec, a class without the required attributes, or bad arguments.
    """
    _check_spec(spec, where)
    cls = resolve_class(spec["class_path"], f"{where}.class_path")
    missing = [name for name in requires if not callable(getattr(cls, name, None))]
    if missing:
        raise ValueError(f"{where}.class_path: {spec['class_path']!r} is not a codec model (it has no "
                         f"{', '.join(missing)})")
    args = _arguments(spec, where)
    try:
        return cls(**args)
    except TypeError as err:
        raise ValueError(f"{where}: cannot build {spec['class_path']} from init_args {sorted(args)}: {err}") from err


def optimizer_factory(spec: dict[str, Any], where: str = "optimizer") -> Callable[[Any], Any]:
    """An ``OptimizerCallable`` / ``LRSchedulerCallable`` from a spec: ``factory(params_or_optimizer)``."""
    _check_spec(spec, where)
    cls = resolve_class(spec["class_path"], f"{where}.class_path")
    if not issubclass(cls, _TORCH_FACTORY_BASES):
        raise ValueError(f"{where}.class_path: {spec['class_path']!r} is not an optimiser or LR scheduler")
    kwargs = _arguments(spec, where)
    return functools.partial(cls, **kwargs)
