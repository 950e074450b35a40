"""Training step time and peak memory of a codec config (G + D step on one batch), through the real Trainer.

    python benchmarks/train_step.py --config configs/taae/tiny.yaml                       # CPU, fp32
    python benchmarks/train_step.py --config configs/taae/recipe.yaml configs/taae/ladder/75m.yaml \
        --device cuda --precision bf16-mixed --batch-size 16 --seconds 2
    python benchmarks/train_step.py --config configs/rvqgan/recipe.yaml configs/rvqgan/dac16k.yaml \
        --device cuda --precision bf16-mixed

Batches are random speech-like audio (no data files needed). Prints parameters, seconds per batch (median after
warm-up), audio seconds per second, peak memory (CUDA: max_memory_allocated; CPU: peak RSS of this process) and,
on CUDA, a model-FLOPs utilisation estimate (the generator's own FLOP count, ``taae.models.flops``) against
--peak-tflops. ``--compile`` compiles generator and discriminator; ``--json`` also records how many graphs were
compiled after the two warm-up batches (0: no recompiles).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import time

import lightning as L
import torch
import yaml

from taae.io.registry import TRAINING_PARTS, instantiate, optimizer_factory
from taae.models import _merge
from taae.models.base import count_parameters


class _Timer(L.Callback):
    def __init__(self):
        self.times: list[float] = []
        self.graphs = lambda: 0
        self.graphs_after_warmup = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)
        if len(self.times) == 2:  # after the warm-up batches: any later compile is a recompile
            self.graphs_after_warmup = self.graphs()


def _batches(batch_size: int, samples: int, count: int):
    t = torch.arange(samples) / 16000
    for i in range(count):
        f0 = 100 + 20 * i % 80
        wav = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 12)) * 0.1
        yield (wav + 0.01 * torch.randn(batch_size, 1, samples)).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", nargs="+", required=True, help="one or more YAMLs, composed left to right")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default=None, help="default: 32-true on CPU, bf16-mixed on CUDA")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio seconds per item")
    parser.add_argument("--steps", type=int, default=8, help="batches timed after 2 warm-up batches")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile the generator and the discriminator")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend (the suite's CPU dry run: eager)")
    parser.add_argument("--json", help="also write the row's numbers to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config: dict = {}
    for path in args.config:
        config = _merge(config, yaml.safe_load(open(path)))
    init = dict(config["model"]["init_args"])
    init.pop("perceptual_loss", None)
    weights = {k: v for k, v in init.get("loss_weights", {}).items() if k != "perceptual"}
    init["loss_weights"] = weights
    for key in ("optimizer_g", "optimizer_d", "scheduler_g", "scheduler_d"):
        spec = init.pop(key, None)
        if spec:
            init[key] = optimizer_factory(spec, f"model.init_args.{key}")
    for key, value in init.items():  # generator, discriminator, losses, balancer: each {class_path, init_args}
        if isinstance(value, dict) and "class_path" in value:
            init[key] = instantiate(value, f"model.init_args.{key}", registry=TRAINING_PARTS)
    init["num_audio_samples"] = 0
    from taae.training import CodecModule

    module = CodecModule(**init)
    if args.compile:  # nn.Module.compile keeps the state dict's keys; a compile per new shape counts below
        for part in (module.generator, module.discriminator):
            if part is not None:
                part.compile(backend=args.compile_backend)
    hop = module.generator.hop_length
    samples = int(args.seconds * module.generator.sample_rate) // hop * hop
    precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    timer = _Timer()
    trainer = L.Trainer(accelerator="gpu" if args.device == "cuda" else "cpu", devices=1, precision=precision,
                        max_steps=2 * (args.steps + 2), logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    from torch._dynamo.utils import counters

    timer.graphs = lambda: counters["stats"]["unique_graphs"]
    trainer.fit(module, list(_batches(args.batch_size, samples, args.steps + 2)))
    step = statistics.median(timer.times[2:])
    audio_seconds = args.batch_size * samples / module.generator.sample_rate
    gen, disc = count_parameters(module.generator), count_parameters(module.discriminator or torch.nn.Module())
    memory = (torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda"
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print("| config | device | precision | generator | discriminator | batch | s/batch | audio s/s | peak memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {' + '.join(args.config)} | {device} | {precision} | {gen / 1e6:.1f} M | {disc / 1e6:.2f} M | "
          f"{args.batch_size}×{samples / module.generator.sample_rate:.2f} s | {step:.3f} | "
          f"{audio_seconds / step:.1f} | "
          f"{memory:.2f} GiB{' (CUDA allocated)' if args.device == 'cuda' else ' (peak RSS)'} |")
    if args.device == "cuda":
        flops = module.generator.train_flops(samples) * args.batch_size  # the model's own count (taae.models.flops)
        mfu = flops / step / (args.peak_tflops * 1e12)
        print(f"generator MFU estimate: {100 * mfu:.1f}% of {args.peak_tflops:g} TFLOP/s (generator only)")
    else:
        mfu = None
    if args.json:
        row = {"config": args.config, "device": device, "precision": precision, "compile": args.compile,
               "checkpointing": getattr(getattr(module.generator, "config", None), "checkpointing", None),
               "generator_params": gen, "discriminator_params": disc, "batch": args.batch_size,
               "segment_seconds": samples / module.generator.sample_rate, "seconds_per_batch": step,
               "audio_seconds_per_second": audio_seconds / step, "peak_memory_gib": memory, "mfu": mfu,
               "recompiles_after_warmup": timer.graphs() - timer.graphs_after_warmup}
        with open(args.json, "w") as f:
            json.dump(row, f, indent=1)


if __name__ == "__main__":
    main()
