"""The quickstart recipe makes a codec that follows the waveform: a short reconstruction-only run of the tiny TAAE
with the quickstart's own loss settings (read from its YAML) must track the input's sign and reach a positive
SI-SDR on its training clip. A mel-dominated recipe (the one before the gradient balancer) fails both: the mel
distance cannot see the sign, and its waveform term was too weak to matter."""

from pathlib import Path

import lightning as L
import pytest
import torch

from taae.eval.metrics import si_sdr
from taae.training.cli import TaaeCLI
from taae.training.objective import sign_correlation
from tests.conftest import demo_speech

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ["configs/taae/tiny.yaml", "configs/data/demo.yaml", "configs/trainer/cpu.yaml",
              "configs/taae/quickstart.yaml"]
STEPS = 240
SI_SDR_FLOOR = 2.0  # dB on the training clip after STEPS batches: the recipe reaches ~4 (its pre-emphasised sample
# term weighs the high band, which SI-SDR barely counts; ~15 before it), a recipe that ignores the sign ~−27


def quickstart_module(tmp_path: Path, *extra: str):
    """The quickstart's CodecModule as the CLI builds it, with the data pointed at a scratch folder."""
    (tmp_path / "data").mkdir(exist_ok=True)
    args = [f"--config={ROOT / c}" for c in QUICKSTART] + [
        f"--data.init_args.train={tmp_path / 'data'}", "--data.init_args.val=null", "--data.init_args.test=null",
        "--trainer.logger=false", *extra]
    return TaaeCLI(args=args, run=False).model


def train_on_clip(module, steps: int) -> torch.Tensor:
    """Reconstruction-only training on three 0.76 s crops of one real prompt; returns that batch (3, 1, T)."""
    module.discriminator_start_steps = module.adversarial_warmup_steps = 10**9
    clip = demo_speech()[:, : 3 * 12160].reshape(3, 1, 12160)
    trainer = L.Trainer(accelerator="cpu", max_steps=2 * steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, [clip] * steps)
    return clip


@torch.no_grad()
def sign_and_si_sdr(module, clip: torch.Tensor) -> tuple[float, float]:
    generator = module.generator.eval()
    y, y_flipped = generator(clip).audio, generator(-clip).audio
    return float(sign_correlation(y, y_flipped).mean()), float(si_sdr(y, clip).mean())


@pytest.mark.slow
def test_quickstart_recipe_follows_the_waveform_sign(tmp_path, one_thread):
    torch.manual_seed(0)
    module = quickstart_module(tmp_path)
    clip = train_on_clip(module, STEPS)
    corr, sdr = sign_and_si_sdr(module, clip)
    assert corr < 0, f"output does not follow the input's sign: corr(y(x), y(-x)) = {corr:.3f}"
    assert sdr > SI_SDR_FLOOR, f"SI-SDR on the training clip {sdr:.2f} dB, floor {SI_SDR_FLOOR} dB"
