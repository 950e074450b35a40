"""stable-codec's TAAE through taae: parity with stable-audio-tools 0.0.17 / 0.0.20 outputs, strict loading, errors.

Every LayerScale, norm gain and bias in the fixture is random (not the 1e-5 init), so a mistake anywhere on the
transformer path (a swapped SwiGLU half, a qkv split by head instead of by q/k/v, RoPE on the wrong dims,
full instead of windowed attention) moves the outputs far beyond the 1e-5 tolerance.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from taae.codec import Codec
from taae.import_official import import_official
from taae.interop.stable_codec import config_from_official, load_stable_codec, official_name
from tests.interop.common import PRESETS, SCHEMA_DIR, STABLE_CODEC_DIR, TRAINED_DIR, checked_speech, outputs

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = dict(rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def model():
    return load_stable_codec([STABLE_CODEC_DIR]).model


def official(name="stable_codec_outputs"):
    return outputs(name)


def test_fixture_weights_make_the_transformer_matter(model):
    gains = [m.gamma.abs().min().item() for n, m in model.named_modules() if n.endswith("scale_attn")]
    assert len(gains) == 3 and min(gains) > 0.4  # not the 1e-5 init that would hide the attention path


@torch.no_grad()
def test_latents_codes_and_audio_equal_sat017(model):
    out, meta = official()
    x = checked_speech(1.0, meta["input"]["sha256_16"])
    latent = model.encode_unbounded(x)
    torch.testing.assert_close(latent, out["pre_bottleneck_latents"], **TOL)
    assert torch.equal(model.quantizer(latent), out["native_codes"])
    torch.testing.assert_close(model.decode_codes(out["native_codes"]), out["codes_audio"], **TOL)


@torch.no_grad()
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_tokens_equal_stable_codec_and_decode_to_its_audio(model, preset):
    out, meta = official()
    x = checked_speech(1.0, meta["input"]["sha256_16"])
    tokens = model.encode(x, preset)  # the import sets token_rule="stable-codec"
    assert torch.equal(tokens, out[f"{preset}/tokens"])
    torch.testing.assert_close(model.decode(out[f"{preset}/tokens"], preset), out[f"{preset}/audio"], **TOL)


@torch.no_grad()
def test_native_tokens_decode_to_the_official_codes(model):
    out, meta = official()
    x = checked_speech(1.0, meta["input"]["sha256_16"])
    tokens = model.encode(x)
    assert torch.equal(model.quantizer.indices_to_codes(tokens[:, 0]), out["native_codes"])
    torch.testing.assert_close(model.decode(tokens), out["native_audio"], **TOL)


@torch.no_grad()
def test_windowed_attention_equals_sat020_on_8_seconds_and_full_attention_does_not(model):
    sat20, meta20 = official("sat020_outputs")
    sat17, meta17 = official()
    x = checked_speech(8.0, meta20["long_input"]["sha256_16"])
    assert meta17["long_input"]["sha256_16"] == meta20["long_input"]["sha256_16"]
    latent = model.encode_unbounded(x)  # 400 frames at 50 Hz, 200 at 25 Hz: far beyond the 128-frame window
    torch.testing.assert_close(latent, sat20["long/latent"], **TOL)
    audio = model.decode_codes(sat20["long/codes"])
    torch.testing.assert_close(audio, sat20["long/audio"], **TOL)
    # SAT 0.0.17 without flash-attn runs full attention: the bug users hit (measured 0.079 latent, 0.17 audio).
    assert (latent - sat17["long/latent_full_attention_sat017"]).abs().max() > 0.02
    assert (audio - sat17["long/audio_full_attention_sat017"].float()).abs().max() > 0.05


def test_key_map_is_one_to_one_onto_the_official_parameters(model):
    file_keys = set(load_file(str(STABLE_CODEC_DIR / "model.safetensors")))
    names = [official_name(k, 2) for k in model.state_dict()]
    assert len(set(names)) == len(names)
    buffers = {k for k in file_keys if k.endswith((".beta", ".inv_freq"))}
    assert set(names) == file_keys - buffers and len(buffers) == 9


def _copy(tmp_path, state=None, config=None):
    folder = tmp_path / "official"
    shutil.copytree(STABLE_CODEC_DIR, folder)
    if state is not None:
        save_file(state, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "model_config.json").write_text(json.dumps(config))
    return folder


def _state():
    return load_file(str(STABLE_CODEC_DIR / "model.safetensors"))


def _config():
    return json.loads((STABLE_CODEC_DIR / "model_config.json").read_text())


def test_wrapped_state_dict_prefix(tmp_path):
    wrapped = _copy(tmp_path / "w", state={f"model.{k}": v for k, v in _state().items()})
    assert any("model." in n for n in load_stable_codec([wrapped]).notes)


def _error(sources) -> str:
    with pytest.raises(ValueError) as info:
        load_stable_codec(sources)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_one_missing_key_is_named(tmp_path):
    state = _state()
    del state["decoder.layers.1.layers.2.weight_v"]
    message = _error([_copy(tmp_path, state=state)])
    assert "1 missing ['decoder.layers.1.layers.2.weight_v']" in message and "0 unexpected" in message


def test_unexpected_misshaped_and_nonzero_beta_are_named(tmp_path):
    state = _state()
    state["encoder.layers.9.weight"] = torch.zeros(1)
    state["encoder.layers.0.bias"] = torch.zeros(3)
    state["encoder.layers.1.layers.2.1.pre_norm.beta"] = torch.ones(128)
    message = _error([_copy(tmp_path, state=state)])
    assert "encoder.layers.9.weight" in message and "encoder.layers.0.bias (3,) vs (128,)" in message
    assert "pre_norm.beta is nonzero" in message


def test_truncated_safetensors_is_named(tmp_path):
    folder = _copy(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "not a readable safetensors file" in _error([folder])


def test_dac_file_given_as_stable_codec(tmp_path):
    from tests.interop.common import DAC_FILE

    message = _error([DAC_FILE, STABLE_CODEC_DIR / "model_config.json"])
    assert "is a DAC weights file" in message and "taae import dac" in message


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["model"].update(fancy_option=1), "'fancy_option'"),
    (lambda c: c["model"]["encoder"]["config"].update(use_snake=True), "use_snake=True"),
    (lambda c: c["model"]["bottleneck"].update(type="fsq"), "bottleneck.type"),
    (lambda c: c["model"]["decoder"]["config"].update(channels=256), "decoder.config.channels"),
    (lambda c: c["model"].update(downsampling_ratio=320), "downsampling_ratio"),
    (lambda c: [c["model"][p]["config"].update(c_mults=[1, 2], strides=[2, 1]) for p in ("encoder", "decoder")],
     "block 1 has stride 1"),
])
def test_config_errors_name_the_key(edit, key):
    config = _config()
    edit(config)
    with pytest.raises(ValueError) as info:
        config_from_official(config)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_config_translation():
    config, notes = config_from_official(_config())
    assert (config.stem_width, config.widths, config.strides) == (128, (128, 256), (1, 2))
    assert (config.depths, config.decoder_depths, config.window) == ((1, 1), (1, 0), (63, 64))
    assert config.identity_stride1 and config.token_rule == "stable-codec" and config.dither_prob == 0.5
    without = _config()
    del without["model"]["bottleneck"]["config"]["noise_dropout"]
    assert config_from_official(without)[0].dither_prob == 0.05  # the official wrapper's default, reported
    assert any("noise_dropout absent" in n for n in config_from_official(without)[1])


@torch.no_grad()
def test_codec_load_of_the_official_folder_and_cli_import_round_trip(tmp_path, capsys):
    from taae.__main__ import main

    out, meta = official()
    x = checked_speech(1.0, meta["input"]["sha256_16"])[0]
    direct = Codec.load(STABLE_CODEC_DIR)
    expected = out["2x15625_700bps/tokens"]
    assert torch.equal(direct.encode(x, 16000, "700bps", normalize=False), expected)
    assert main(["import", "stable-codec", str(STABLE_CODEC_DIR), str(tmp_path / "export")]) == 0
    assert "rope.inv_freq checked" in capsys.readouterr().out
    exported = Codec.load(tmp_path / "export")
    assert exported.model.config.token_rule == "stable-codec" and exported.model.config.identity_stride1
    assert torch.equal(exported.encode(x, 16000, "700bps", normalize=False), expected)
    assert exported.model_hash == direct.model_hash
    assert main(["import", "stable-codec", str(tmp_path / "missing"), str(tmp_path / "e2")]) == 2
    assert "not found" in capsys.readouterr().err


def test_import_official_reports(tmp_path):
    notes = import_official("stable-codec", [STABLE_CODEC_DIR], tmp_path / "e")
    assert notes[-1].startswith(f"wrote {tmp_path / 'e'}: TAAE, 2,427,852 parameters")


# -- what the official tools really write (issue 22) ------------------------------------------------------------

SCHEMA_VERSIONS = ("0.0.17", "0.0.20")


def _schema(version: str) -> dict:
    return json.loads((SCHEMA_DIR / f"model_config_sat{version}.json").read_text())


@torch.no_grad()
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_full_schema_config_imports_and_equals_the_official_factory(version):
    """A config with every key stable-audio-tools' autoencoder config carries (``sample_size``, ``training``, every
    encoder/decoder/bottleneck/pretransform key the official classes accept), built by the official factory."""
    config = SCHEMA_DIR / f"model_config_sat{version}.json"
    loaded = load_stable_codec([config, STABLE_CODEC_DIR / "model.safetensors"])
    out, meta = official(f"schema_sat{version.replace('.', '')}_outputs")
    x = checked_speech(1.0, meta["input"]["sha256_16"])
    latent = loaded.model.encode_unbounded(x)
    torch.testing.assert_close(latent, out["latent"], **TOL)
    assert torch.equal(loaded.model.quantizer(latent), out["codes"])
    torch.testing.assert_close(loaded.model.decode_codes(out["codes"]), out["audio"], **TOL)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_full_schema_report_lists_every_accepted_but_ignored_key(version):
    _, notes = config_from_official(_schema(version))
    report = "\n".join(notes)
    ignored = ["sample_size", "training", "use_proj_head", "proj_head_dim", "detach_proj_head",
               "encoder.requires_grad", "decoder.requires_grad", "bottleneck.requires_grad", "pretransform.enable_grad",
               "dither_inference", "use_snake=False", "layer_scale=True", "use_dilated_conv=False", "conformer=False"]
    if version == "0.0.20":
        ignored += ["mapping_style='conv'", "oversampling=1", "postfilter_channels=0"]
    for key in ignored:
        assert key in report, key
    assert "'demo'" in report and "'loss_configs'" in report and "'optimizer_configs'" in report


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["model"]["encoder"]["config"].update(mapping_style="linear"), "mapping_style='linear'"),
    (lambda c: c["model"]["decoder"]["config"].update(mapping_style="none"), "mapping_style='none'"),
    (lambda c: c["model"]["pretransform"]["config"].update(oversampling=2), "oversampling=2"),
    (lambda c: c["model"]["pretransform"]["config"].update(postfilter_channels=32), "postfilter_channels=32"),
    (lambda c: c["model"]["encoder"]["config"].update(conformer=True), "conformer=True"),
    (lambda c: c["model"]["encoder"]["config"].update(layer_scale=False), "layer_scale=False"),
    (lambda c: c["model"]["encoder"]["config"].update(fancy=1), "'fancy'"),
    (lambda c: c.update(sample_sizes=16000), "'sample_sizes'"),
])
def test_full_schema_features_taae_lacks_stay_one_line_errors(edit, key):
    config = _schema("0.0.20")
    edit(config)
    with pytest.raises(ValueError) as info:
        config_from_official(config)
    assert key in str(info.value) and "\n" not in str(info.value)


def test_full_schema_import_report_is_printed(tmp_path, capsys):
    from taae.__main__ import main

    sources = [str(SCHEMA_DIR / "model_config_sat0.0.20.json"), str(STABLE_CODEC_DIR / "model.safetensors")]
    assert main(["import", "stable-codec", *sources, str(tmp_path / "export")]) == 0
    printed = capsys.readouterr().out
    assert "sample_size: accepted, ignored" in printed and "mapping_style='conv'" in printed


def _trained(kind: str) -> dict[str, torch.Tensor]:
    """The training wrapper's own state dict of ``kind`` ("ema": autoencoder_ema.ema_model, "online":
    autoencoder), saved by the generator beside the checkpoint."""
    out, _ = official("stable_codec_trained_outputs")
    return {k.split("/", 1)[1]: v for k, v in out.items() if k.startswith(f"{kind}/")}


def _assert_is(model, state: dict[str, torch.Tensor]) -> None:
    n = len(model.config.widths)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[official_name(key, n)]), key


def test_trainer_checkpoint_fixture_is_what_stable_codec_writes():
    ckpt = torch.load(TRAINED_DIR / "model.ckpt", map_location="cpu", weights_only=True)  # tensors and plain data
    roots = {".".join(k.split(".")[:2]) for k in ckpt["state_dict"]}
    assert {"autoencoder.encoder", "autoencoder_ema.ema_model", "autoencoder_ema.online_model"} <= roots
    ema, online = _trained("ema"), _trained("online")
    assert max((ema[k] - online[k]).abs().max() for k in ema) > 1e-4  # the test below can tell them apart
    for k, v in ema.items():
        assert torch.equal(ckpt["state_dict"][f"autoencoder_ema.ema_model.{k}"], v)
        assert torch.equal(ckpt["state_dict"][f"autoencoder.{k}"], online[k])


@torch.no_grad()
def test_trainer_checkpoint_imports_ema_by_default_and_online_with_no_ema(tmp_path, capsys):
    """stable-codec's AutoencoderTrainingWrapper (ema_pytorch EMA) saved through Lightning: the EMA weights live
    under autoencoder_ema.ema_model., never under autoencoder_ema. directly."""
    from taae.__main__ import main

    ema, online = _trained("ema"), _trained("online")
    loaded = load_stable_codec([TRAINED_DIR])
    _assert_is(loaded.model, ema)  # main loaded autoencoder. here: prefix autoencoder_ema. left "ema_model.encoder"
    assert any("state_dict/autoencoder_ema.ema_model." in n for n in loaded.notes)
    raw = load_stable_codec([TRAINED_DIR], use_ema=False)
    _assert_is(raw.model, online)
    out, meta = official("stable_codec_trained_outputs")
    x = checked_speech(0.1, meta["input"]["sha256_16"])
    for model, kind in ((loaded.model, "ema"), (raw.model, "online")):
        audio = model.decode_codes(model.quantizer(model.encode_unbounded(x)))
        torch.testing.assert_close(audio, out[f"{kind}_audio"], **TOL)
    for flags, state in (([], ema), (["--no-ema"], online)):
        export = tmp_path / f"export{len(flags)}"
        assert main(["import", "stable-codec", str(TRAINED_DIR), str(export), *flags]) == 0
        _assert_is(Codec.load(export).model, state)
    assert "autoencoder_ema.ema_model." in capsys.readouterr().out


def test_checkpoint_with_an_unknown_ema_layout_is_refused(tmp_path):
    ckpt = torch.load(TRAINED_DIR / "model.ckpt", map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    renamed = {k.replace("autoencoder_ema.ema_model.", "autoencoder_ema.shadow."): v for k, v in state.items()}
    torch.save({"state_dict": renamed}, tmp_path / "model.ckpt")
    shutil.copy(TRAINED_DIR / "model_config.json", tmp_path / "model_config.json")
    message = _error([tmp_path])
    assert "no EMA autoencoder" in message and "--no-ema" in message
    _assert_is(load_stable_codec([tmp_path], use_ema=False).model, _trained("online"))
    # training.use_ema false: the wrapper has no autoencoder_ema at all; the online weights load, and say so
    torch.save({"state_dict": {k: v for k, v in state.items() if not k.startswith("autoencoder_ema.")}},
               tmp_path / "model.ckpt")
    loaded = load_stable_codec([tmp_path])
    _assert_is(loaded.model, _trained("online"))
    assert any("no EMA weights in this checkpoint" in n for n in loaded.notes)
