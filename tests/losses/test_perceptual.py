"""WavLM feature loss on a tiny random WavLM: zero on identity, gradients to x̂ only, a frozen teacher that stays
out of state_dict and eval mode, per-utterance independence from the rest of the batch, and loading from disk."""

from __future__ import annotations

import pytest
import torch
import transformers  # noqa: F401  (a required dependency: a missing one is an error, not a skip)
from torch import nn

from taae.losses.perceptual import RANDOM_WAVLM_CONFIG, WavLMFeatureLoss, check_wavlm_folder, save_random_wavlm
from tests.conftest import synth_speech

TINY = RANDOM_WAVLM_CONFIG  # WavLM-Large's layout at toy width


@pytest.fixture(scope="module")
def loss_fn():
    torch.manual_seed(0)
    return WavLMFeatureLoss(config=TINY)


@pytest.fixture(scope="module")
def audio():
    items = [synth_speech(0.3, 16000, seed=s) for s in range(3)]
    return torch.stack(items)  # (3, 1, T)


def test_zero_for_identical_positive_otherwise(loss_fn, audio):
    target = audio[:2]
    assert loss_fn(target, target).item() == pytest.approx(0.0, abs=1e-7)
    pred = target + 0.05 * torch.randn_like(target)
    assert loss_fn(pred, target).item() > 0


def test_gradient_reaches_prediction_not_wavlm(loss_fn, audio):
    target = audio[:2].clone().requires_grad_(True)
    pred = (audio[:2] + 0.05 * torch.randn_like(audio[:2])).requires_grad_(True)
    loss_fn(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None  # target features ran under no_grad
    assert all(not p.requires_grad and p.grad is None for p in loss_fn.wavlm.parameters())


def test_target_features_keep_no_graph(loss_fn, audio):
    seen = []
    original = loss_fn.features

    def spy(wav):
        out = original(wav)
        seen.append([f.requires_grad for f in out])
        return out

    loss_fn.features = spy
    try:
        pred = audio[:1].clone().requires_grad_(True)
        loss_fn(pred, audio[1:2].clone().requires_grad_(True))
    finally:
        del loss_fn.features
    target_flags, pred_flags = seen
    assert not any(target_flags) and all(pred_flags)


def test_each_item_is_independent_of_the_batch(loss_fn, audio):
    a, _, c = audio
    noise = 0.05 * torch.randn_like(audio)
    pred = audio + noise
    alone = loss_fn(pred[:1], audio[:1], reduction="none")
    with_b = loss_fn(pred[:2], audio[:2], reduction="none")
    # a loud neighbour with a DC offset: whole-batch normalisation (torchaudio's) turns 0.70 into 0.07 here
    loud = torch.stack([pred[0], 10 * pred[2] + 1]), torch.stack([a, 10 * c + 1])
    with_c = loss_fn(*loud, reduction="none")
    torch.testing.assert_close(with_b[0], alone[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(with_c[0], alone[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(loss_fn(pred[:2], audio[:2]), with_b.mean())


def test_wavlm_is_frozen_hidden_and_always_in_eval(loss_fn):
    parent = nn.Sequential(loss_fn)
    parent.train()
    assert loss_fn.training and not loss_fn.wavlm.training
    assert list(loss_fn.parameters()) == [] and len(loss_fn.state_dict()) == 0
    parent.to(torch.float64)  # device/dtype moves still reach the hidden teacher
    assert next(loss_fn.wavlm.parameters()).dtype == torch.float64
    parent.to(torch.float32)


def test_layer_selection_truncates_the_model_and_resamples():
    loss_fn = WavLMFeatureLoss(config=TINY, layers=[0], sample_rate=8000)
    assert loss_fn.layers == [0] and len(loss_fn.wavlm.encoder.layers) == 1
    wav = synth_speech(0.5, 8000).unsqueeze(0)
    # 0.5 s resampled to 16 kHz is 8000 samples: (8000 - 10) // 5 + 1 = 1599, then (1599 - 4) // 4 + 1 = 399 frames
    assert loss_fn.features(wav)[0].shape == (1, 399, TINY["hidden_size"])
    assert loss_fn(wav + 0.05 * torch.randn_like(wav), wav).item() > 0
    with pytest.raises(ValueError, match="layers"):
        WavLMFeatureLoss(config=TINY, layers=[2])


def test_loads_from_local_path(tmp_path, loss_fn, audio):
    loss_fn.wavlm.save_pretrained(tmp_path / "wavlm")
    loaded = WavLMFeatureLoss(model_path=str(tmp_path / "wavlm"))
    pred = audio[:2] + 0.05 * torch.randn_like(audio[:2])
    torch.testing.assert_close(loaded(pred, audio[:2]), loss_fn(pred, audio[:2]))


def test_errors(tmp_path, loss_fn, audio):
    with pytest.raises(ValueError, match="mono"):
        loss_fn(audio.expand(-1, 2, -1), audio.expand(-1, 2, -1))
    with pytest.raises(ValueError, match="reduction"):
        loss_fn(audio, audio, reduction="sum")
    with pytest.raises(FileNotFoundError, match="not-there"):
        WavLMFeatureLoss(model_path=str(tmp_path / "not-there"))
    with pytest.raises(ValueError, match="exactly one"):
        WavLMFeatureLoss()
    with pytest.raises(ValueError, match="exactly one"):
        WavLMFeatureLoss(model_path=str(tmp_path), config=TINY)


def test_a_missing_or_wrong_wavlm_folder_says_how_to_get_wavlm_large_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        check_wavlm_folder(tmp_path / "wavlm-large")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as empty:
        check_wavlm_folder(tmp_path / "empty")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "bert" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError) as other:
        check_wavlm_folder(tmp_path / "bert")
    for err, what in ((missing, "not found"), (empty, "config.json"), (other, "'bert'")):
        message = str(err.value)
        assert "\n" not in message and what in message
        assert "microsoft/wavlm-large" in message and "save_pretrained" in message


def test_a_saved_random_wavlm_loads_and_leaves_the_global_random_stream_alone(tmp_path):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    folder = save_random_wavlm(tmp_path / "wavlm")
    assert torch.equal(torch.rand(3), expected)
    assert check_wavlm_folder(folder) == folder
    assert WavLMFeatureLoss(model_path=str(folder)).layers == [0, 1]
