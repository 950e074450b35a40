"""The training command line: LightningCLI over ``CodecModule`` and any ``LightningDataModule``.

The YAML is the experiment: ``python train.py fit --config configs/taae/tiny.yaml --config configs/data/demo.yaml``.
Several ``--config`` files compose in order; ``--print_config`` writes the merged result. Resume with
``--ckpt_path``; fine-tune from a checkpoint's weights with ``--model.init_args.init_weights_from``.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.cli import LightningCLI

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
        return


def root_cause(err: BaseException) -> BaseException:
    """The error that started a chain: jsonargparse re-raises a constructor's one-line error inside a long
    "does not validate against any of the Union subtypes" message, ``from`` the original."""
    while isinstance(err.__cause__, (ValueError, TypeError, OSError)):
        err = err.__cause__
    return err


def main(args=None) -> TaaeCLI:
    try:
        return TaaeCLI(args=args)
    except (ValueError, TypeError, OSError) as err:
        raise SystemExit(f"error: {root_cause(err)}") from err
