"""bf16-mixed training on the CPU: the autocast path the GPU suite trains with, finite and close to fp32.

Lightning's ``bf16-mixed`` autocasts on the CPU as on CUDA, so the parts that must stay in fp32 under autocast
(quantisation, the spectral losses, the balancer's gradients) are checked here without a GPU.
"""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from tests.conftest import synth_speech
from tests.training.test_module import make_module


def train(precision: str, tmp_path, steps: int = 4) -> list[dict[str, float]]:
    """The logged training metrics after each batch, from the same initial weights and batches."""
    torch.manual_seed(0)
    module = make_module()
    logged: list[dict[str, float]] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})

    batches = [0.3 * synth_speech(0.08, seed=i).unsqueeze(0).repeat(2, 1, 1) for i in range(steps)]  # (2, 1, 1280)
    trainer = L.Trainer(accelerator="cpu", devices=1, precision=precision, max_steps=2 * steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, callbacks=[Record()])
    trainer.fit(module, batches)
    return logged


@pytest.mark.slow
def test_bf16_mixed_steps_are_finite_and_close_to_fp32(tmp_path):
    fp32, bf16 = train("32-true", tmp_path / "fp32"), train("bf16-mixed", tmp_path / "bf16")
    assert len(bf16) == len(fp32) >= 4
    for step, (a, b) in enumerate(zip(fp32, bf16)):
        assert a.keys() == b.keys()
        assert all(math.isfinite(v) for v in b.values()), f"step {step}: {b}"
    # The first batch's losses come from identical weights: only bf16 rounding of the generator separates them
    # (measured: 1.5e-4 relative for mel, 3e-4 for loss_g). Later batches follow weights that drift apart.
    for key in ("train/mel", "train/waveform", "train/loss_g"):
        assert bf16[0][key] == pytest.approx(fp32[0][key], rel=2e-3), key
        assert [b[key] for b in bf16] == pytest.approx([a[key] for a in fp32], rel=0.05), key


def test_quantizer_stays_fp32_under_bf16_autocast():
    """bf16-mixed autocasts the encoder; the FSQ codes must still be cut in fp32 (§3: bf16 keeps 8 bits)."""
    from taae.models.taae import TAAE, TAAEConfig

    torch.manual_seed(0)
    model = TAAE(TAAEConfig(stem_width=64, widths=(64, 64), strides=(1, 2), depths=(1, 1), head_dim=32,
                            layer_scale_init=1.0)).eval()
    wav = synth_speech(0.5).unsqueeze(0)  # (1, 1, T)
    with torch.no_grad():
        fp32 = model(wav)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(wav)
    assert bf16.codes.dtype == torch.float32, bf16.codes.dtype
    assert torch.isfinite(bf16.audio).all()
    # The bf16 encoder moves the latent a little; codes on a level boundary may flip, most must not.
    agree = (bf16.codes == fp32.codes).float().mean().item()
    assert agree > 0.9, agree
