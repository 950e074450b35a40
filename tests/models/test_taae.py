import pytest
import torch

from taae.models import from_config
from taae.models.taae import TAAE, TAAEConfig, patch, unpatch


def tiny(**kwargs) -> TAAE:
    values = dict(stem_width=128, widths=(128, 128), strides=(1, 2), depths=(1, 1), layer_scale_init=1.0,
                  attention_backend="sdpa")
    values.update(kwargs)
    return TAAE(TAAEConfig(**values))


def test_patching_round_trip_is_exact():
    wav = torch.randn(3, 1, 320 * 7)
    patches = patch(wav, 320)
    assert patches.shape == (3, 320, 7)
    # channel k holds the k-th sample of every patch
    assert torch.equal(patches[1, 5, 2], wav[1, 0, 2 * 320 + 5])
    assert torch.equal(unpatch(patches), wav)


def test_default_config_is_the_paper_reading():
    c = TAAEConfig()
    paper = (c.patch_size, c.hop_length, c.latent_dim, c.fsq_levels, c.window, c.head_dim)
    assert paper == (320, 640, 6, 17, (63, 64), 128)
    assert c.norm_eps == 1e-2 and c.layer_scale_init == 1e-5 and c.dither_prob == 0.5
    assert TAAE(TAAEConfig(stem_width=128, widths=(128, 128), depths=(0, 0))).frame_rate == 25.0


@pytest.mark.parametrize("length", [1, 2, 319, 640, 641, 1999, 16000, 50000])
def test_output_length_equals_input_length(length):
    torch.manual_seed(length)
    model = tiny().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, length) * 0.1)
    assert out.audio.shape == (1, 1, length)
    assert out.codes.shape == (1, 6, -(-length // 640))


@pytest.mark.parametrize("amplitude", [0.0, 1e-6])
def test_silence_and_tiny_inputs_give_finite_outputs_and_gradients(amplitude):
    model = tiny().train()
    wav = (torch.randn(2, 1, 3200) * amplitude).requires_grad_(True)
    out = model(wav)
    assert torch.isfinite(out.audio).all()
    out.audio.square().mean().backward()
    assert torch.isfinite(wav.grad).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_quantizer_passes_gradients_straight_through(mode):
    """Every quantiser path (dither mix in train mode, rounding in eval mode) has unit slope in the bounded latent:
    the encoder output z receives exactly ∂L/∂codes · tanh'(z), and the encoder's weights get their share of it."""
    model = tiny(dither_prob=0.5).train(mode == "train")
    seen = {}

    def keep(module, inputs, output):
        seen["z"], seen["codes"] = inputs[0], output
        inputs[0].retain_grad()
        output.retain_grad()

    model.quantizer.register_forward_hook(keep)
    out = model(torch.randn(4, 1, 6400) * 0.1)
    (out.audio - 0.1).square().mean().backward()
    z, codes = seen["z"], seen["codes"]
    assert codes.grad.abs().amax() > 0
    torch.testing.assert_close(z.grad, codes.grad * (1 - torch.tanh(z.detach()) ** 2), rtol=1e-5, atol=1e-12)
    stem = model.encoder.stem.parametrizations.weight.original1
    assert torch.isfinite(stem.grad).all() and stem.grad.abs().amax() > 0


def test_tokens_are_int64_and_decode_to_the_eval_path():
    model = tiny().eval()
    wav = torch.randn(2, 1, 6400) * 0.1
    tokens = model.encode(wav)
    assert tokens.dtype == torch.int64 and tokens.shape == (2, 1, 10)
    indices = model.quantizer.codes_to_indices(model.quantizer(model.encoder(patch(wav, 320))))
    assert indices.dtype == torch.int64 and indices.shape == (2, 10)
    assert torch.equal(indices, tokens[:, 0])
    with torch.no_grad():
        torch.testing.assert_close(model.decode(tokens), model(wav).audio, atol=1e-5, rtol=1e-5)


def test_encode_uses_eval_quantisation_in_train_mode():
    model = tiny().eval()
    wav = torch.randn(2, 1, 6400) * 0.1
    reference = {preset: model.encode(wav, preset) for preset in (None, "700bps")}
    model.train()  # dither would change the codes of about half the items if encode followed the mode
    for preset, tokens in reference.items():
        assert torch.equal(model.encode(wav, preset), tokens), preset
    assert model.training  # and encode leaves the mode alone


def test_presets_decode_identically_at_700_and_1000_bps():
    model = tiny().eval()
    wav = torch.randn(1, 1, 12800) * 0.3
    specs = model.presets()
    assert [specs[p].bitrate for p in ("400bps", "700bps", "1000bps")] == [400, 700, 1000]
    native = model.decode(model.encode(wav))
    for preset in ("700bps", "1000bps", "2x15625_700bps"):
        assert torch.equal(model.decode(model.encode(wav, preset), preset), native)


def test_custom_and_unknown_presets():
    model = tiny()
    spec = model.add_preset("9x3", [(9, 1.0), (3, 0.125)])
    assert spec.tokens_per_frame == 2
    wav = torch.randn(1, 1, 6400) * 0.3
    assert torch.equal(model.decode(model.encode(wav, "9x3"), "9x3"), model.decode(model.encode(wav)))
    with pytest.raises(ValueError, match="unknown preset"):
        model.encode(wav, "123bps")
    with pytest.raises(ValueError, match="out of range"):
        model.decode(torch.full((1, 2, 10), 15625), "700bps")


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="widths"):
        TAAEConfig(widths=(100,), strides=(2,), depths=(1,))
    with pytest.raises(ValueError, match="one entry per stage"):
        TAAEConfig(widths=(128, 128), strides=(2,), depths=(1, 1))
    with pytest.raises(ValueError, match="dither_prob"):
        TAAEConfig(dither_prob=1.5)
    with pytest.raises(ValueError, match="unknown TAAEConfig keys"):
        TAAE({"widthz": [128]})
    with pytest.raises(ValueError, match="shape"):
        tiny()(torch.zeros(1, 2, 640))


def test_from_config_builds_the_yaml_model(tmp_path):
    model = from_config("configs/taae/tiny.yaml")
    assert isinstance(model, TAAE)
    assert 1_000_000 < model.num_parameters() < 5_000_000
    assert model.config.patch_size == 320 and model.config.window == (63, 64) and model.config.head_dim == 128
    with pytest.raises(FileNotFoundError):
        from_config(tmp_path / "missing.yaml")


def test_identity_stride1_is_the_official_layout_and_validated():
    config = dict(stem_width=128, widths=(128, 256), strides=(1, 2), depths=(0, 0))
    official = TAAE(TAAEConfig(**config, identity_stride1=True))
    ours = TAAE(TAAEConfig(**config))
    assert isinstance(official.encoder.stages[0][0], torch.nn.Identity)
    assert isinstance(official.decoder.stages[1][1], torch.nn.Identity)
    assert sum(p.numel() for p in ours.parameters()) - sum(p.numel() for p in official.parameters()) == 2 * (
        128 * 128 + 128 + 128)  # two 1x1 projections (v, bias, g) that the official layout does not have
    wav = torch.randn(1, 1, 1280)
    assert official.decode(official.encode(wav)).shape == (1, 1, 1280)
    with pytest.raises(ValueError, match="identity_stride1: stage 1 has stride 1"):
        TAAEConfig(stem_width=128, widths=(128, 256), strides=(2, 1), depths=(0, 0), identity_stride1=True)
    with pytest.raises(ValueError, match="token_rule"):
        TAAEConfig(token_rule="sc")


# -- the causal variant (docs/decisions.md §9 item 13) ---------------------------------------------------------------

def causal_tiny(**kwargs) -> TAAE:
    values = dict(patch_size=16, stem_width=32, widths=(32, 32), strides=(1, 2), depths=(1, 1), head_dim=16,
                  window=(4, 0), causal=True, layer_scale_init=1.0, attention_backend="sdpa")
    values.update(kwargs)
    return TAAE(TAAEConfig(**values)).eval()


@pytest.mark.parametrize("t", [0, 33, 300, 959])
def test_causal_outputs_before_a_change_are_bit_identical(t):
    # Prefix causality: input changed from sample t on leaves every latent frame and every output sample before
    # t's frame bit-identical (the look-ahead is the rest of that 32-sample frame, nothing more).
    torch.manual_seed(0)
    model = causal_tiny()
    hop = model.hop_length
    wav = torch.randn(1, 1, 30 * hop)
    changed = wav.clone()
    changed[..., t:] = torch.randn_like(changed[..., t:])
    frame = t // hop
    with torch.no_grad():
        z, z_changed = (model.encoder(patch(w, 16)) for w in (wav, changed))
        audio, audio_changed = model(wav).audio, model(changed).audio
        codes = model.quantizer(z)
        decoded, decoded_changed = model.decode_codes(codes), model.decode_codes(model.quantizer(z_changed))
    assert torch.equal(z[..., :frame], z_changed[..., :frame])
    assert not torch.equal(z[..., frame], z_changed[..., frame])  # the frame holding t sees it
    assert torch.equal(audio[..., : frame * hop], audio_changed[..., : frame * hop])
    assert torch.equal(decoded[..., : frame * hop], decoded_changed[..., : frame * hop])


def test_causal_decoder_output_depends_only_on_past_codes():
    model = causal_tiny()
    codes = model.quantizer(torch.randn(1, 6, 20))
    changed = codes.clone()
    changed[..., 9] = -changed[..., 9]
    with torch.no_grad():
        a, b = model.decode_codes(codes), model.decode_codes(changed)
    hop = model.hop_length
    assert torch.equal(a[..., : 9 * hop], b[..., : 9 * hop]) and not torch.equal(a[..., 9 * hop:], b[..., 9 * hop:])


def test_causal_model_has_the_non_causal_parameters():
    # Same names and shapes, same initialisation from the same seed: a causal model can start from offline weights.
    torch.manual_seed(5)
    offline = causal_tiny(causal=False, window=(4, 4))
    torch.manual_seed(5)
    causal = causal_tiny()
    assert {k: v.shape for k, v in causal.state_dict().items()} == {k: v.shape for k, v in offline.state_dict().items()}
    assert all(torch.equal(a, b) for a, b in zip(causal.state_dict().values(), offline.state_dict().values()))
    with torch.no_grad():
        wav = torch.randn(1, 1, 640)
        assert not torch.equal(causal(wav).audio, offline(wav).audio)


def test_causal_config_refuses_look_ahead_windows():
    with pytest.raises(ValueError, match=r"window: a causal TAAE .* got \[63, 64\]; use e.g. \[63, 0\]"):
        TAAEConfig(causal=True)
