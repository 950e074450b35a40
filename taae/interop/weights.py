"""Reading released weight files as tensors only, and mapping their keys onto a taae model strictly.

Shape legend: none beyond each tensor's own; keys are dotted module paths.

Files are read with ``safetensors`` or ``torch.load(weights_only=True)``: nothing is unpickled beyond tensors and
plain containers (numpy scalars and dtypes, which DAC's metadata may hold, are allowed as data). Key maps are
written from taae's side: every taae key names the official key it takes, so a report can list, in the file's own
names, each key that is missing, unexpected or of the wrong shape, and the load fails on any of them.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["WEIGHT_NORM", "apply_key_map", "read_tensors", "strip_prefix", "torch_load_data"]

# Legacy torch.nn.utils.weight_norm names → torch.nn.utils.parametrizations.weight_norm names (same g and v).
WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _is_torch_package(path: Path) -> bool:
    """A ``torch.package`` archive: a zip whose records sit under ``<name>/.data/`` with an ``extern_modules`` list
    (``torch/package/package_exporter.py``), unlike a ``torch.save`` zip (``<name>/data.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith(".data/extern_modules") for n in names) and not any(n.endswith("/data.pkl") for n in names)


def torch_load_data(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with numpy scalars/dtypes allowed as data; one-line ValueError otherwise."""
    import numpy as np

    if _is_torch_package(path):
        # audiotools' BaseModel.save (DAC.save) writes this by default (package=True): the model as pickled code.
        raise ValueError(f"{path}: a torch.package archive (DAC.save's default, package=True) holds the model as "
                         "pickled code, which taae never runs; save the weights with DAC.save(path, package=False) "
                         "or use the released weights_*.pth")

    safe = [np.dtype, type(np.dtype("float32")), type(np.dtype("float64")), type(np.dtype("int64"))]
    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar  # numpy 2 / numpy 1
    try:
        with torch.serialization.safe_globals([*safe, scalar]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        reason = " ".join(text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation")[0].split())
        if "Unsupported global" in reason:
            raise ValueError(f"{path}: refused to unpickle anything but tensors and plain data ({reason})") from None
        raise ValueError(f"{path}: not a readable torch file ({reason or _first_line(err)})") from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable torch file ({_first_line(err)})") from None


def read_tensors(path: Path) -> dict[str, Any]:
    """The top-level mapping of a ``.safetensors`` file (tensors) or a torch file (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None
    data = torch_load_data(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of tensors, found {type(data).__name__}")
    return data


def strip_prefix(state: dict[str, Tensor], prefixes: tuple[str, ...], source: str,
                 allowed_roots: tuple[str, ...]) -> tuple[dict[str, Tensor], str]:
    """Remove the first of ``prefixes`` that leads to the model's keys; returns (state, the prefix used or "").

    A bare state dict (keys already starting with one of ``allowed_roots``) is returned as is. Keys outside the
    chosen prefix (a discriminator, an EMA copy, a CTC head) are dropped: the caller reports the prefix it used.
    """
    if any(k.split(".", 1)[0] in allowed_roots for k in state):
        return state, ""
    for prefix in prefixes:
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if any(k.split(".", 1)[0] in allowed_roots for k in sub):
            return sub, prefix
    roots = sorted({k.split(".", 1)[0] for k in state})[:8]
    raise ValueError(f"{source}: no {'/'.join(allowed_roots)} keys, bare or under any of {list(prefixes)}; "
                     f"the file's top-level names are {roots}")


def _head(keys: list[str]) -> str:
    return f"{keys[:6]}{' …' if len(keys) > 6 else ''}"


def apply_key_map(model: nn.Module, state: dict[str, Tensor], official_name: Callable[[str], str], source: str,
                  checked: dict[str, Callable[[str, Tensor], str | None]] | None = None) -> list[str]:
    """Load ``state`` (official names) into ``model`` through ``official_name(taae_key)``, strictly.

    Args:
        model: the taae model to fill; its state dict defines which keys must exist.
        state: the official state dict (any float dtype; copied into the model's dtype).
        official_name: maps each taae key to the official key that supplies it.
        source: names the file in errors.
        checked: official key suffix → check(key, tensor) returning an error text or None, for official buffers
            that taae does not store (e.g. a LayerNorm bias that must be zero); each is verified, then consumed.

    Returns:
        One line per checked buffer kind, for the import report.

    Raises:
        ValueError listing, in official names, every missing, unexpected and mis-shaped key and every failed check.
    """
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a mapping of names to tensors, found {type(state).__name__}")
    other = sorted(name for name, value in state.items() if not isinstance(value, Tensor))
    if other:
        raise ValueError(f"{source}: {len(other)} entries are not tensors {_head(other)} (e.g. "
                         f"{type(state[other[0]]).__name__}); expected a state dict of tensors")
    expected = model.state_dict()
    wanted = {official_name(k): k for k in expected}
    missing = sorted(name for name in wanted if name not in state)
    mismatched = [f"{name} {tuple(state[name].shape)} vs {tuple(expected[k].shape)}"
                  for name, k in sorted(wanted.items()) if name in state and state[name].shape != expected[k].shape]
    unexpected, failures, counts = [], [], {}
    for name, tensor in sorted(state.items()):
        if name in wanted:
            continue
        suffix = next((s for s in (checked or {}) if name.endswith(s)), None)
        if suffix is None:
            unexpected.append(name)
            continue
        counts[suffix] = counts.get(suffix, 0) + 1
        problem = checked[suffix](name, tensor)
        if problem:
            failures.append(problem)
    nonfloat = [name for name, k in wanted.items() if name in state and not state[name].is_floating_point()]
    if missing or unexpected or mismatched or failures or nonfloat:
        parts = [f"{len(missing)} missing {_head(missing)}", f"{len(unexpected)} unexpected {_head(unexpected)}",
                 f"{len(mismatched)} mis-shaped (file vs taae) {_head(mismatched)}"]
        if nonfloat:
            parts.append(f"{len(nonfloat)} not floating point {_head(nonfloat)}")
        if failures:
            parts.append(f"{len(failures)} failed checks {_head(failures)}")
        raise ValueError(f"{source} does not match the official layout: " + "; ".join(parts))
    model.load_state_dict({k: state[name] for name, k in wanted.items()}, strict=True)
    return [f"{n} × *{suffix} checked" for suffix, n in counts.items()]
