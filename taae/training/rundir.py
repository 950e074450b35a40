"""One run folder per experiment: ``trainer.default_root_dir`` places every log and checkpoint of a run.

Lightning's loggers each need a ``save_dir`` and ``ModelCheckpoint`` a ``dirpath``, so a config that moves a run
had to repeat its folder in each of them (and a copy that forgot one wrote into the old run). Here the trainer
configs leave them ``null`` and ``TaaeCLI`` fills them from ``trainer.default_root_dir`` just before building:

    <root>/tb/  <root>/csv/metrics.csv  <root>/checkpoints/last.ckpt  (<root>/samples/ from AudioSamples)

``TensorBoardLogger`` and ``CSVLogger`` below are Lightning's, with ``save_dir`` optional so that the YAML can leave
it out; an explicit ``save_dir`` or ``dirpath`` is kept as given. The ``config.yaml`` a run saves keeps the nulls,
so reusing it with another ``--trainer.default_root_dir`` (stage 2 on a stage-1 run, a ladder rung) moves the
logs and checkpoints with it instead of writing into the old run.

This is the only way a run's folder is chosen: an overlay (``configs/taae/quickstart.yaml``) sets
``default_root_dir`` and nothing else about folders; :func:`explicit_run_dirs` finds a config that names one anyway
(``tests/test_configs.py`` holds every shipped composition to none, and the ladder runner refuses a rung that does).
"""

from __future__ import annotations

import copy
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lightning.pytorch import loggers
from lightning.pytorch.callbacks import ModelCheckpoint

CHECKPOINT_FOLDER = "checkpoints"
"""``ModelCheckpoint(dirpath=null)`` writes to ``<default_root_dir>/checkpoints``."""


def _needs_root(save_dir: Any) -> str:
    if save_dir is None:
        raise ValueError("logger save_dir is null: run through train.py (TaaeCLI fills it from "
                         "trainer.default_root_dir) or give save_dir")
    return save_dir


class TensorBoardLogger(loggers.TensorBoardLogger):
    """Lightning's TensorBoard logger; ``save_dir: null`` means ``trainer.default_root_dir`` (filled by TaaeCLI)."""

    def __init__(self, save_dir: str | None = None, name: str | None = "tb", version: int | str | None = "",
                 **kwargs):
        super().__init__(_needs_root(save_dir), name=name, version=version, **kwargs)


class CSVLogger(loggers.CSVLogger):
    """Lightning's CSV logger; ``save_dir: null`` means ``trainer.default_root_dir`` (filled by TaaeCLI)."""

    def __init__(self, save_dir: str | None = None, name: str | None = "csv", version: int | str | None = "",
                 **kwargs):
        super().__init__(_needs_root(save_dir), name=name, version=version, **kwargs)


def _entries(value: Any) -> list:
    if value is None or isinstance(value, bool):
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _is_subclass(entry: Any, base: type) -> bool:
    class_path = getattr(entry, "class_path", None)
    if not isinstance(class_path, str):
        return False
    # The trainer section is the user's own command line, which jsonargparse has already imported; the class
    # allow-list (taae.io.registry) guards specs read from checkpoints and exports, not this.
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, base)


def fill_run_dirs(trainer: Any) -> Any:
    """Fill null logger ``save_dir`` and ``ModelCheckpoint.dirpath`` of a parsed ``trainer`` config in place.

    ``trainer`` is the ``trainer`` namespace LightningCLI parsed; without ``default_root_dir`` nothing changes
    (Lightning's own defaults apply).
    """
    root = getattr(trainer, "default_root_dir", None)
    if root is None:
        return trainer
    root = os.fspath(root)
    for entry in _entries(getattr(trainer, "logger", None)):
        args = getattr(entry, "init_args", None)
        if args is not None and "save_dir" in args and args.save_dir is None:
            args.save_dir = root
    for entry in _entries(getattr(trainer, "callbacks", None)):
        args = getattr(entry, "init_args", None)
        if args is not None and _is_subclass(entry, ModelCheckpoint) and args.get("dirpath") is None:
            args.dirpath = os.path.join(root, CHECKPOINT_FOLDER)
    return trainer


def explicit_run_dirs(trainer: Any) -> list[str]:
    """The logger ``save_dir`` and ``ModelCheckpoint.dirpath`` values a parsed ``trainer`` config sets itself.

    Empty for every shipped composition: a config that names a folder there keeps it under any
    ``--trainer.default_root_dir`` (a ladder rung, a stage-2 run, a copy of the quickstart), and jsonargparse carries
    the ``init_args`` of a replaced list entry over to the class that replaces it, so a later trainer config does not
    undo it either. Each entry reads ``trainer.logger[0].save_dir=runs/x``.
    """
    found = []
    for i, entry in enumerate(_entries(getattr(trainer, "logger", None))):
        args = getattr(entry, "init_args", None)
        if args is not None and args.get("save_dir") is not None:
            found.append(f"trainer.logger[{i}].save_dir={args.save_dir}")
    for i, entry in enumerate(_entries(getattr(trainer, "callbacks", None))):
        args = getattr(entry, "init_args", None)
        if args is not None and _is_subclass(entry, ModelCheckpoint) and args.get("dirpath") is not None:
            found.append(f"trainer.callbacks[{i}].dirpath={args.dirpath}")
    return found


@contextmanager
def run_dirs_filled(cli) -> Iterator[None]:
    """While a ``LightningCLI`` builds its objects: the config with filled run folders, the saved one without.

    ``SaveConfigCallback`` receives the config as parsed (nulls kept); everything else is built from a copy
    whose ``trainer`` section went through ``fill_run_dirs``.
    """
    original = cli.config
    key = str(cli.subcommand) if cli.subcommand else None
    filled = copy.deepcopy(original)
    section = filled[key] if key else filled
    if section.get("trainer") is not None:
        fill_run_dirs(section.trainer)
    save_callback = cli.save_config_callback

    def save_original(parser, config, **kwargs):  # noqa: ARG001 - LightningCLI passes the config it holds
        return save_callback(parser, original[key] if key else original, **kwargs)

    cli.config = filled
    if save_callback is not None:
        cli.save_config_callback = save_original
    try:
        yield
    finally:
        cli.config = original
        cli.save_config_callback = save_callback
