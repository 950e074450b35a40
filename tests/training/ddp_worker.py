"""A short multi-process DDP run on CPU (gloo), started by tests/training/test_ddp.py as a script.

Lightning's DDP launcher re-runs this script once per extra rank. Each rank writes ``rank<R>.json`` under --out:
the content hash of every item it trained on, the balancer's effective weights at every generator step, its weights'
and EMA's hashes, and its step and skip counts.
The trainer's strategy comes from configs/trainer/ddp.yaml, so the shipped config is what is tested.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy

from taae.data import SharDataModule
from taae.io.export import weights_hash
from taae.losses import MultiScaleMelLoss
from taae.models.discriminators import ComplexSTFTDiscriminator
from taae.models.taae import TAAE, TAAEConfig
from taae.training import CodecModule
from taae.training.balancer import GradientBalancer

ROOT = Path(__file__).resolve().parents[2]
SEGMENT = 1280


class Module(CodecModule):
    """CodecModule that can feed NaN to one rank at one batch, and records what each rank trained on."""

    def __init__(self, nan_rank: int, nan_batch: int, **kwargs):
        super().__init__(**kwargs)
        self.nan_rank, self.nan_batch, self.seen, self.scales = nan_rank, nan_batch, [], []
        generator_loss = self.objective.generator_loss

        def recorded(*args):
            loss = generator_loss(*args)
            self.scales.append(loss.combined.weights)  # floats: compared exactly across ranks
            return loss

        self.objective.generator_loss = recorded

    def training_step(self, batch, batch_idx):
        position = self.trainer.fit_loop.epoch_loop.batch_progress.total.ready - 1  # restored on resume
        self.seen.append([position] + [hashlib.sha1(x.numpy().tobytes()).hexdigest()[:12] for x in batch])
        if self.global_rank == self.nan_rank and position == self.nan_batch:
            batch = torch.full_like(batch, float("nan"))
        return super().training_step(batch, batch_idx)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-steps", type=int, required=True)
    parser.add_argument("--ckpt-every", type=int, default=0)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--nan-rank", type=int, default=-1)
    parser.add_argument("--nan-batch", type=int, default=-1)
    parser.add_argument("--devices", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    L.seed_everything(0)
    generator = TAAE(TAAEConfig(stem_width=64, widths=(64,), strides=(2,), depths=(1,), head_dim=32,
                                layer_scale_init=0.1, attention_backend="sdpa"))
    module = Module(
        args.nan_rank, args.nan_batch, generator=generator,
        discriminator=ComplexSTFTDiscriminator(fft_sizes=(256, 158), filters=4),
        mel_loss=MultiScaleMelLoss(window_lengths=(64, 256), n_mels=(10, 40)),
        loss_weights={"mel": 1.0, "waveform": 1.0, "adv_gen": 1.0, "adv_feat": 1.0}, ema_decay=0.9,
        balancer=GradientBalancer(ema_decay=0.9),
        optimizer_g=lambda p: torch.optim.AdamW(p, lr=1e-3), optimizer_d=lambda p: torch.optim.AdamW(p, lr=1e-3),
        num_audio_samples=0)
    data = SharDataModule(args.data, segment_length=SEGMENT, batch_size=2, seed=1, shuffle_buffer=4)
    config = yaml.safe_load((ROOT / "configs" / "trainer" / "ddp.yaml").read_text())["trainer"]
    strategy = config["strategy"]
    assert strategy["class_path"] == "lightning.pytorch.strategies.DDPStrategy"
    callbacks = []
    if args.ckpt_every:
        callbacks.append(ModelCheckpoint(dirpath=Path(args.out) / "ckpt", every_n_train_steps=args.ckpt_every,
                                         save_top_k=-1))
    trainer = L.Trainer(
        accelerator="cpu", devices=args.devices, strategy=DDPStrategy(**strategy["init_args"]),
        use_distributed_sampler=config["use_distributed_sampler"], max_steps=args.max_steps, logger=False,
        enable_checkpointing=bool(callbacks), callbacks=callbacks, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=args.out)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    trainer.fit(module, data, ckpt_path=args.resume)
    record = {"seen": module.seen, "scales": module.scales, "weights": weights_hash(module.state_dict()),
              "ema": weights_hash(module.ema.model.state_dict()), "generator_steps": int(module.generator_steps),
              "nan_skips": int(module.nan_skips), "world_size": trainer.world_size}
    (Path(args.out) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
