"""Codec weights on disk: the export format (read and write), Lightning checkpoints (read) and the weights hash.

An export is a folder with ``config.json`` (generator spec with its user presets, rates, hash, format version) and
``model.safetensors``; it executes no code when loaded. A Lightning ``.ckpt`` is read with
``torch.load(weights_only=True)`` (:func:`taae.io.checkpoints.load_checkpoint`; ``trust=True`` unpickles fully). Both
carry
the generator's ``{class_path, init_args: {config}}`` spec, so loading never needs the YAML; it is built from
registered codec model classes only (:func:`taae.io.registry.instantiate`). Both load strictly, reporting every missing,
unexpected or mis-shaped key (§9 item 8). :class:`taae.codec.Codec` loads and exports through these functions.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)

from taae import __version__
from taae.errors import ModelTooLarge
from taae.io.atomic import write_many
from taae.io.checkpoints import load_checkpoint
from taae.io.registry import CODEC_METHODS, instantiate

__all__ = [
    "CONFIG_NAME",
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "WEIGHTS_NAME",
    "build_generator",
    "load_strict",
    "read_checkpoint",
    "read_export",
    "weights_hash",
    "write_export",
]

EXPORT_FORMAT = "taae-export"
EXPORT_VERSION = 2
"""2: user presets live in the generator's config (``init_args.config.presets``); 1 kept them in ``presets``."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SIZE_SLACK = 2
"""A config may name a model at most this many times larger than the weights its file holds (:func:`build_generator`):
memory allocated for a bad file stays within a small multiple of the file's own size."""


def weights_hash(state_dict: dict[str, Tensor]) -> str:
    """First 16 hex digits of a sha256 over every entry (name, dtype, shape, bytes) in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def load_strict(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one error that lists every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                  for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        def head(keys):
            return f"{keys[:8]}{' …' if len(keys) > 8 else ''}"
        raise ValueError(
            f"{source} does not match {type(model).__name__} built from its config: "
            f"{len(missing)} missing keys {head(missing)}, {len(unexpected)} unexpected keys {head(unexpected)}, "
            f"{len(mismatched)} shape mismatches (file vs model) {head(mismatched)}"
        )
    model.load_state_dict(state, strict=True)


def build_generator(spec: Any, where: str, available_bytes: int, source: str) -> nn.Module:
    """The codec model ``spec`` names, built only if its weights fit in what the file holds.

    The model is first built on the ``meta`` device (shapes, no memory), so a config naming a huge model is refused
    before anything is allocated: a file cannot hold fewer bytes than the weights it claims to carry. A model up to
    :data:`SIZE_SLACK` times the file (plus 16 MB) is built, so that a near miss is reported key by key by
    :func:`load_strict` instead.
    """
    limit = SIZE_SLACK * available_bytes + (16 << 20)
    registered = 0

    def count(module, name, tensor):  # stops a deep model's meta build early, not after a million layers
        nonlocal registered
        if tensor is not None:
            registered += tensor.numel() * tensor.element_size()
            if registered > limit:
                raise ModelTooLarge(f"{where} names a model with more than {registered / 1e6:.1f} MB of weights but "
                                    f"{source} holds only {available_bytes / 1e6:.1f} MB; refused before allocating it")

    hooks = [register_module_parameter_registration_hook(count), register_module_buffer_registration_hook(count)]
    try:
        with torch.device("meta"):
            probe = instantiate(spec, where, requires=CODEC_METHODS)
    finally:
        for hook in hooks:
            hook.remove()
    needed = sum(t.numel() * t.element_size() for t in probe.state_dict().values())
    del probe
    if needed > limit:
        raise ModelTooLarge(f"{where} names a model with {needed / 1e6:.1f} MB of weights but {source} holds only "
                            f"{available_bytes / 1e6:.1f} MB; refused before allocating it")
    return instantiate(spec, where, requires=CODEC_METHODS)


def read_checkpoint(path: Path, use_ema: bool, trust: bool = False,
                    trust_hint: str | None = None) -> tuple[dict[str, Any], dict[str, Tensor], str]:
    """(generator spec, generator state dict, "ema" | "generator") from a Lightning checkpoint.

    Loaded with ``weights_only=True`` unless ``trust`` (see :func:`taae.io.checkpoints.load_checkpoint`).
    """
    ckpt = load_checkpoint(path, trust=trust) if trust_hint is None else \
        load_checkpoint(path, trust=trust, trust_hint=trust_hint)
    if (not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict)
            or not isinstance(ckpt.get("taae"), dict) or "generator" not in ckpt["taae"]):
        keys = sorted(map(str, ckpt))[:12] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} is not a taae training checkpoint: expected 'state_dict' and 'taae' "
                         f"(with 'generator') entries, found {keys}")
    state = {k: v for k, v in ckpt["state_dict"].items() if isinstance(k, str) and isinstance(v, Tensor)}
    has_ema = any(k.startswith("ema.model.") for k in state)
    which = "ema" if use_ema and has_ema else "generator"
    prefix = "ema.model." if which == "ema" else "generator."
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise ValueError(f"{path} holds no weights under {prefix!r}")
    return ckpt["taae"]["generator"], weights, which


def read_export(folder: Path) -> tuple[dict[str, Any], nn.Module]:
    """(``config.json`` contents, generator with the export's weights) of an export folder; checks format, version
    and keys, not the hash (the caller compares ``config["model_hash"]`` with the loaded model's)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for p in (config_path, weights_path):
        if not p.is_file():
            raise FileNotFoundError(f"{folder} is not a taae export: {p.name} is missing")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_path} is not valid JSON: {err}") from err
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    if config.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{config_path}: format is {config.get('format')!r}, expected {EXPORT_FORMAT!r}")
    version = config.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= EXPORT_VERSION:
        raise ValueError(f"{config_path}: export version {config.get('version')!r} is not supported; this "
                         f"taae reads versions 1 … {EXPORT_VERSION}")
    for key in ("generator", "model_hash"):
        if key not in config:
            raise ValueError(f"{config_path}: missing key {key!r}")
    try:
        with safe_open(str(weights_path), "pt") as f:  # the header only: a corrupt file is named as such first
            f.keys()
    except Exception as err:  # noqa: BLE001 -- safetensors raises its own SafetensorError (and OSError)
        raise ValueError(f"{weights_path} is not a readable safetensors file: {err}") from err
    model = build_generator(config["generator"], f"{config_path}: generator", weights_path.stat().st_size,
                            str(weights_path))
    try:
        weights = load_file(str(weights_path))
    except Exception as err:  # noqa: BLE001 -- safetensors raises its own SafetensorError (and OSError)
        raise ValueError(f"{weights_path} is not a readable safetensors file: {err}") from err
    load_strict(model, weights, str(weights_path))
    return config, model


def write_export(folder: str | os.PathLike, model: nn.Module, spec: dict[str, Any] | None, weights: str,
                 model_hash: str) -> Path:
    """Write ``config.json`` (generator spec with its user presets, rates, hash, version) and ``model.safetensors``.

    Both files are staged completely before either replaces a previous export (:func:`taae.io.atomic.write_many`),
    so a failed write leaves a previous export in ``folder`` as it was.
    """
    from safetensors.torch import save

    if spec is None:
        raise ValueError(f"cannot export {type(model).__name__}: it has no config dataclass; pass spec=")
    folder = Path(folder)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    config = {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "taae_version": __version__,
        "generator": spec, "weights": weights, "model_hash": model_hash,
        "sample_rate": int(model.sample_rate), "frame_rate": float(model.frame_rate),
        "hop_length": int(model.hop_length),
    }
    write_many({folder / WEIGHTS_NAME: save(state, metadata={"model_hash": model_hash}),
                folder / CONFIG_NAME: json.dumps(config, indent=2) + "\n"})
    return folder
