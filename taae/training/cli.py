"""The training command line: LightningCLI over ``CodecModule`` and any ``LightningDataModule``.

The YAML is the experiment: ``python train.py fit --config configs/taae/tiny.yaml --config configs/data/demo.yaml``.
Several ``--config`` files compose in order; ``--print_config`` writes the merged result. Resume with
``--ckpt_path``; fine-tune from a checkpoint's weights with ``--model.init_args.init_weights_from``.

:func:`main` (``train.py``) turns user errors into one line (``taae.errors``): a config typo names its key path
instead of jsonargparse's usage text and Union-subtype tree, a missing data folder names the folder, a diverged run
names its last finite step; ``--debug`` restores the tracebacks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from taae.errors import ConfigError, pop_debug, run_main
from taae.io.checkpoints import check_resumable
from taae.training.module import CodecModule
from taae.training.rundir import run_dirs_filled


class TaaeCLI(LightningCLI):
    def __init__(self, args=None, run: bool = True, **kwargs):
        super().__init__(
            CodecModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            args=args,
            run=run,
            **kwargs,
        )

    def instantiate_classes(self) -> None:
        with run_dirs_filled(self):  # null logger / checkpoint folders come from trainer.default_root_dir
            super().instantiate_classes()

    def _parse_ckpt_path(self) -> None:
        # LightningCLI would re-parse the module's saved hyper-parameters from --ckpt_path over the YAML. CodecModule
        # keeps its injected generator, discriminator and losses out of them (they are modules, not settings), so
        # that re-parse would drop the generator. The YAML stays the experiment: a resumed run is built from the
        # config given, and the checkpoint's weights must then load into it (Lightning's strict load says so if not).
        # It also means a checkpoint's hyper-parameters never name a class that gets imported. What is checked here is
        # that Lightning's own load (weights_only) will take the file: refused in one line, before anything is built.
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path") if self.config.get("subcommand") else None
        if ckpt_path and Path(ckpt_path).is_file():
            check_resumable(ckpt_path)


class OneLineErrorParser(LightningArgumentParser):
    """A parser whose errors raise :class:`ConfigError` instead of printing the usage and exiting.

    The message stays jsonargparse's full tree: nested (subclass) parsers report into their parent's message, so it
    is condensed once, where it is printed (:func:`taae.errors.one_line`).
    """

    def error(self, message: str, ex: Exception | None = None):
        raise ConfigError(message) from ex


def main(args: list[str] | None = None) -> int:
    """``train.py``: run the CLI; a user error prints one line and returns 2 (``--debug``: the traceback)."""
    argv, debug = pop_debug(sys.argv[1:] if args is None else args)
    if args is None:
        sys.argv[1:] = argv  # LightningCLI warns when it is given both args and a command line

    def run() -> int:
        TaaeCLI(args=None if args is None else argv, parser_class=OneLineErrorParser)
        return 0

    return run_main("train.py", run, debug)
