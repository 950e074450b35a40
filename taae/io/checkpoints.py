"""Loading checkpoints without running their code, and writing checkpoints that load that way.

A ``.ckpt`` is a pickle; ``torch.load(weights_only=False)`` calls whatever ``__reduce__`` it holds.
:func:`load_checkpoint` always loads with ``weights_only=True`` (tensors, containers and plain values only) and
unpickles fully only when the caller passes ``trust=True`` (``--trust-checkpoint`` on the command line), with a
warning. What taae writes into a checkpoint is kept loadable the safe way by :func:`make_checkpoint_safe`. Class
paths inside files are the other way a file could run code: :mod:`taae.io.registry`. The whole threat model is
``docs/threat-model.md``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import pickle
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from taae.errors import UntrustedFileError

__all__ = ["TRUST_FLAG", "check_resumable", "first_line", "load_checkpoint", "make_checkpoint_safe", "plain",
           "unsafe_entries"]

TRUST_FLAG = "--trust-checkpoint"
"""The command-line flag (``trust=True`` in Python) that allows full unpickling."""


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
            raise ValueError(f"cannot read checkpoint {path}: {first_line(err)}") from err
        if not trust:
            raise UntrustedFileError(
                f"{path} holds pickled objects that only full unpickling restores ({', '.join(unsafe)}); "
                f"unpickling can run any code, so it was not loaded. If you trust this file, {trust_hint}"
            ) from None
        warnings.warn(f"{path}: fully unpickling a trusted checkpoint ({trust_source}); it holds "
                      f"{', '.join(unsafe)}", stacklevel=2)
        return _load_trusted(path, map_location)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {first_line(err)}") from err


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
        raise ValueError(f"cannot read checkpoint {path}: {first_line(err)}") from err
    if unsafe:
        raise UntrustedFileError(f"--ckpt_path {path} holds pickled objects that only full unpickling restores "
                                 f"({', '.join(sorted(unsafe))}); training resumes only from checkpoints that load "
                                 "safely, so nothing was run")


def _load_trusted(path: Path, map_location: Any) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError, pickle.UnpicklingError,
            AttributeError, ModuleNotFoundError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {first_line(err)}") from err


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


def first_line(err: BaseException) -> str:
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


