"""RVQGAN: DAC's 16 kHz size, exact lengths (odd-stride fix), presets/bitrates, codec interface and the YAML configs.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from taae.models.base import GeneratorOutput
from taae.models.rvqgan import RVQGAN, DecoderBlock, RVQGANConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "rvqgan"
DAC16K_PARAMETERS = 74_175_906
"""descript-audio-codec 1.0.0's 16 kHz generator, ``sum(p.numel() for p in dac.DAC(...).parameters())`` with the
arguments of its released ``weights_16khz.pth`` (encoder_dim 64, rates 2/4/5/8, decoder_dim 1536, 12 × 1024
codebooks of dim 8); the same modules, so the same count."""
NATIVE_BPS = {"dac16k": 6000, "tiny": 1600, "400bps": 400, "700bps": 700, "1000bps": 1000}

# Small enough for CPU, but with DAC's 16 kHz strides (odd 5 included) and more than one codebook.
TINY = dict(encoder_dim=4, decoder_dim=32, n_codebooks=4, codebook_size=64, codebook_dim=4)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread costs more than the work


@pytest.fixture
def model():
    return RVQGAN(RVQGANConfig(**TINY)).eval()


def build_on_meta(config) -> RVQGAN:
    """Parameter counting without allocating 74 M floats."""
    with torch.device("meta"):
        return RVQGAN(config)


def test_dac16k_parameter_count():
    model = build_on_meta(RVQGANConfig())
    assert model.num_parameters() == DAC16K_PARAMETERS
    assert model.config.latent_dim == 1024 and model.frame_rate == 50.0


def test_dac16k_presets_and_bitrates():
    presets = build_on_meta(RVQGANConfig()).presets()
    assert presets["native"].bitrate == 6000 and presets["native"].tokens_per_frame == 12
    assert presets["1q"].bitrate == 500
    assert presets["500bps"].vocab_sizes == (1024,)
    assert presets["6000bps"].tokens_per_frame == 12
    assert [f"{k}q" in presets for k in range(1, 13)] == [True] * 12


@pytest.mark.parametrize("length", [1, 319, 320, 321, 16001])
def test_output_length_equals_input_length(model, length):
    wav = torch.randn(2, 1, length) * 0.1
    with torch.no_grad():
        out = model(wav)
        tokens = model.encode(wav)
        audio = model.decode(tokens)
    frames = max(1, math.ceil(length / 320))
    assert out.audio.shape == (2, 1, length)
    assert out.latent.shape == (2, model.config.latent_dim, frames) and out.codes.shape == out.latent.shape
    assert tokens.shape == (2, 4, frames) and tokens.dtype == torch.int64
    assert audio.shape == (2, 1, frames * 320)


def test_odd_stride_transposed_conv_is_fixed():
    frames = 20
    x = torch.randn(1, 8, frames)
    assert DecoderBlock(8, 4, stride=5)(x).shape[-1] == 5 * frames
    # DAC's conv (kernel 2s, stride s, padding ⌈s/2⌉, no output_padding) loses one frame:
    # (L−1)s − 2·3 + 10 = 5L − 1.
    unfixed = nn.ConvTranspose1d(8, 4, kernel_size=10, stride=5, padding=3)
    assert unfixed(x).shape[-1] == 5 * frames - 1
    # Whole 16 kHz decoder: 6400 samples for 20 frames (DAC's returns 6392, §7).
    decoder = RVQGAN(RVQGANConfig(**TINY)).decoder
    assert decoder(torch.randn(1, 64, frames)).shape[-1] == 6400


def test_forward_training_path(model):
    model.train()
    torch.manual_seed(0)
    out = model(torch.randn(4, 1, 960) * 0.1)
    assert isinstance(out, GeneratorOutput)
    assert set(out.losses) == {"vq/commitment", "vq/codebook"} == set(model.loss_terms)  # declared = produced
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.losses.values())
    (out.audio.square().mean() + sum(out.losses.values())).backward()
    assert out.audio.abs().max() <= 1.0  # tanh head


def test_encode_is_deterministic_and_ignores_train_mode(model):
    wav = torch.randn(3, 1, 1600) * 0.1
    with torch.no_grad():
        ref = model.eval().encode(wav)
        model.train()  # DAC would apply quantizer dropout here; encode must not
        assert torch.equal(model.encode(wav), ref)
        assert torch.equal(model.encode(wav), ref)
        assert torch.equal(model.encode(wav, preset="2q"), ref[:, :2])


def test_decode_matches_decoder_of_from_codes(model):
    wav = torch.randn(2, 1, 1600) * 0.1
    with torch.no_grad():
        tokens = model.encode(wav)
        assert torch.equal(model.decode(tokens), model.decoder(model.quantizer.from_codes(tokens)))
        # Decoding with k codebooks uses exactly the first k: stage k+1's codes do not matter.
        altered = tokens.clone()
        altered[:, 2] = (altered[:, 2] + 1) % 64
        assert torch.equal(model.decode(altered[:, :2], preset="2q"), model.decode(tokens[:, :2], preset="2q"))
        # The latent decoded from 2 codebooks equals the 2-stage quantised latent of the training path.
        out = model(wav, n_quantizers=2)
        torch.testing.assert_close(model.quantizer.from_codes(tokens[:, :2]), out.codes, atol=1e-5, rtol=1e-5)


def test_preset_errors(model):
    tokens = torch.zeros(1, 4, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"unknown preset 'nope'.*native.*1q"):
        model.decode(tokens, preset="nope")
    with pytest.raises(ValueError, match=r"unknown preset"):
        model.encode(torch.zeros(1, 1, 320), preset="nope")
    with pytest.raises(ValueError, match=r"preset '2q' expects K=2"):
        model.decode(tokens, preset="2q")
    with pytest.raises(ValueError, match=r"preset 'native' expects K=4"):
        model.decode(tokens[:, :3])
    bad = tokens.clone()
    bad[0, 1, 2] = 64
    with pytest.raises(ValueError, match="out of range"):
        model.decode(bad)
    with pytest.raises(ValueError, match=r"\(B, 1, T\)"):
        model(torch.zeros(1, 2, 320))


def test_bitrate_aliases_skip_fractional_rates():
    # 44.1 kHz / 512 = 86.13 Hz: no "{k}q" rate is a whole number of bps, so no bps aliases.
    presets = build_on_meta(RVQGANConfig(sample_rate=44100, encoder_strides=(2, 4, 8, 8), hop_length=512,
                                         decoder_strides=(8, 8, 4, 2), n_codebooks=2)).presets()
    assert set(presets) == {"native", "1q", "2q"}


def test_init_quirk_zero_conv_bias_default_weights(model):
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert convs and all(torch.count_nonzero(m.bias) == 0 for m in convs)
    transposed = [m for m in model.modules() if isinstance(m, nn.ConvTranspose1d)]
    assert transposed and all(torch.count_nonzero(m.bias) > 0 for m in transposed)  # not an nn.Conv1d (§7)


@pytest.mark.parametrize("key, kwargs", [
    ("encoder_strides", dict(encoder_strides=(2, 4, 5, 4))),
    ("decoder_strides", dict(decoder_strides=(8, 5, 4, 4))),
    ("decoder_strides", dict(decoder_strides=())),
    ("hop_length", dict(hop_length=0)),
    ("quantizer_dropout", dict(quantizer_dropout=-0.1)),
    ("codebook_size", dict(codebook_size=0)),
    ("n_codebooks", dict(n_codebooks=0)),
    ("decoder_dim", dict(decoder_dim=100)),
    ("latent_dim", dict(latent_dim=0)),
])
def test_config_validation(key, kwargs):
    with pytest.raises(ValueError, match=key):
        RVQGANConfig(**kwargs)


def test_config_from_dict():
    model = build_on_meta({"encoder_dim": 4, "encoder_strides": [2, 4, 5, 8], "decoder_dim": 32})
    assert model.config.encoder_strides == (2, 4, 5, 8) and model.config.latent_dim == 64
    with pytest.raises(TypeError, match="RVQGANConfig"):
        RVQGAN(42)


# ---------------------------------------------------------------------------- configs/rvqgan/*.yaml

def _instantiate_generator(section: dict) -> RVQGAN:
    """Parse ``generator`` the way LightningCLI does (class_path + init_args into the typed dataclass) and build."""
    parser = _parser()
    parser.add_subclass_arguments(nn.Module, "generator")
    cfg = parser.parse_object({"generator": section})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return instantiate(cfg).generator


def _parser():
    import jsonargparse

    return jsonargparse.ArgumentParser(exit_on_error=False)


def _load(name: str) -> dict:
    """A config as train.py sees it: tiny alone, every bitrate file composed on recipe.yaml (left to right)."""
    from taae.models import _merge

    stack = [] if name in ("tiny", "recipe", "quickstart") else ["recipe"]
    config: dict = {}
    for part in [*stack, name]:
        config = _merge(config, yaml.safe_load((CONFIGS / f"{part}.yaml").read_text()) or {})
    return config


def test_every_config_is_listed():
    models = {p.stem for p in CONFIGS.glob("*.yaml") if "model" in (yaml.safe_load(p.read_text()) or {})}
    assert models == {*NATIVE_BPS, "recipe"}


def test_the_quickstart_overlays_tiny_with_run_settings_only():
    cfg = _load("quickstart")
    assert "model" not in cfg and cfg["trainer"]["max_steps"] > 0 and "segment_length" in cfg["data"]["init_args"]


@pytest.mark.parametrize("name", sorted(NATIVE_BPS))
def test_config_builds_generator(name):
    cfg = _load(name)
    assert cfg["model"]["class_path"] == "taae.training.CodecModule" and "seed_everything" in cfg
    assert "data" not in cfg and "trainer" not in cfg  # composed with configs/data/ and configs/trainer/ files
    args = cfg["model"]["init_args"]
    if name == "tiny":
        model = _instantiate_generator(args["generator"])
    else:
        with torch.device("meta"):
            model = _instantiate_generator(args["generator"])
    assert isinstance(model, RVQGAN) and isinstance(model.config, RVQGANConfig)
    assert model.presets()["native"].bitrate == NATIVE_BPS[name]
    assert f"{NATIVE_BPS[name]}bps" in model.presets()
    # The model's own loss names must be weighted by the recipe (DAC: 0.25 commitment, 1 codebook).
    assert args["loss_weights"]["vq/commitment"] == 0.25 and args["loss_weights"]["vq/codebook"] == 1.0
    if name != "tiny":  # tiny is the quickstart recipe: balanced shares instead of DAC's λ (configs/rvqgan/tiny.yaml)
        assert args["loss_weights"]["mel"] == 15.0 and args["adversarial_loss"] == "lsgan"
    else:
        assert args["balancer"]["class_path"].endswith("GradientBalancer")
    n = model.num_parameters()
    if name == "tiny":
        assert 1e6 <= n <= 3e6
        wav = torch.randn(1, 1, 4001) * 0.1
        with torch.no_grad():
            assert model(wav).audio.shape == wav.shape
    elif name == "dac16k":
        assert n == DAC16K_PARAMETERS
    else:
        assert model.frame_rate == 25.0 and model.hop_length == 640


@pytest.mark.parametrize("name", sorted(NATIVE_BPS))
def test_config_model_section_parses(name):
    """The whole ``model:`` section type-checks against CodecModule; tiny's is built (generator + discriminators)."""
    import lightning

    parser = _parser()
    parser.add_subclass_arguments(lightning.LightningModule, "model")
    cfg = parser.parse_object({"model": _load(name)["model"]})
    if name == "tiny":
        instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
        module = instantiate(cfg).model
        assert isinstance(module.generator, RVQGAN) and 1e5 < sum(p.numel() for p in module.discriminator.parameters())
