"""Codec: token round trips, one pre-processing path, clear errors, chunking, checkpoint loading and export."""

from __future__ import annotations

import dataclasses

import pytest
import soundfile as sf
import torch

from taae import __version__
from taae.codec import Codec
from taae.codec.chunking import chunked
from taae.io.audio import AudioError, save_audio
from taae.io.export import weights_hash
from taae.io.tokens import TokenFile
from taae.models.taae import TAAE, TAAEConfig
from taae.quantizers.residual_fsq import PRESET_ALIASES, PostHocResidualFSQ
from taae.quantizers.stages import parse_stages
from tests.conftest import synth_speech

PRESETS = ["native", "400bps", "700bps", "1000bps"]


def tiny_model(seed: int = 0, **overrides) -> TAAE:
    """A ~1.2 M parameter TAAE; LayerScale 1 so that the transformer shapes the output."""
    torch.manual_seed(seed)
    values = dict(stem_width=128, widths=(128,), strides=(2,), depths=(1,), patch_size=320, layer_scale_init=1.0)
    return TAAE(TAAEConfig(**{**values, **overrides}))


def spec_of(model: TAAE) -> dict:
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()}
    return {"class_path": "taae.models.taae.TAAE", "init_args": {"config": config}}


def write_checkpoint(path, model: TAAE, ema: TAAE | None = None, extra: dict | None = None):
    """A Lightning-layout checkpoint as CodecModule writes it (no training needed)."""
    state = {f"generator.{k}": v for k, v in model.state_dict().items()}
    state["discriminator.conv.weight"] = torch.zeros(3)  # other modules' weights are ignored
    if ema is not None:
        state.update({f"ema.model.{k}": v for k, v in ema.state_dict().items()})
        state["ema.step"] = torch.tensor(10)
    state.update(extra or {})
    torch.save({"state_dict": state, "taae": {"generator": spec_of(model), "version": __version__},
                "global_step": 10, "hyper_parameters": {"ema_decay": 0.999}}, path)
    return path


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(tiny_model())


@pytest.fixture(scope="module")
def wav() -> torch.Tensor:
    return synth_speech(1.3)  # (1, T), not a whole number of frames


@pytest.mark.parametrize("preset", PRESETS)
def test_tokens_codes_tokens_is_identity(codec, wav, preset):
    tokens = codec.encode(wav, 16000, preset)  # (1, K, S)
    spec = codec.presets()[codec.resolve_preset(preset)]
    assert tokens.dtype == torch.int64 and tokens.shape == (1, spec.tokens_per_frame, 33)
    spec.check_tokens(tokens)
    quantizer = codec.model.quantizer
    if preset == "native":
        codes = quantizer.indices_to_codes(tokens[:, 0])
        again = quantizer.codes_to_indices(codes).unsqueeze(1)
    else:
        residual = PostHocResidualFSQ.from_preset(preset)
        codes = residual.decode(tokens)
        again = residual.encode(codes)
    assert torch.equal(again, tokens)
    assert codec.decode(tokens, preset).shape == (1, 33 * 640)
    assert codec.decode(tokens, preset, num_samples=wav.shape[-1]).shape == wav.shape


def test_exact_presets_give_the_native_codes(codec, wav):
    native = codec.model.quantizer.indices_to_codes(codec.encode(wav, 16000)[:, 0])
    for preset in ("700bps", "1000bps"):
        codes = PostHocResidualFSQ.from_preset(preset).decode(codec.encode(wav, 16000, preset))
        torch.testing.assert_close(codes, native, rtol=0, atol=1e-6)


def test_file_and_tensor_take_the_same_preprocessing(codec, tmp_path):
    stereo = torch.cat([synth_speech(1.0, 44100, seed=1), 0.5 * synth_speech(1.0, 44100, seed=2)])  # (2, T)
    save_audio(tmp_path / "x.wav", stereo, 44100, subtype="FLOAT")
    from_file = codec.encode_file(tmp_path / "x.wav", "700bps")
    assert torch.equal(from_file.tokens, codec.encode(stereo, 44100, "700bps"))
    assert from_file.num_samples == codec.preprocess(stereo, 44100).shape[-1] == 16000
    assert not torch.equal(codec.encode(stereo, 44100, normalize=False), codec.encode(stereo, 44100))


def test_batch_matches_items(codec):
    batch = torch.stack([synth_speech(0.8, seed=s) for s in (1, 2)])  # (2, 1, T)
    tokens = codec.encode(batch, 16000, "1000bps")
    assert tokens.shape == (2, 4, 20)
    for i in range(2):
        assert torch.equal(tokens[i: i + 1], codec.encode(batch[i], 16000, "1000bps"))
    assert codec.decode(tokens, "1000bps").shape == (2, 20 * 640)
    from_disk = tokens[:1].numpy().astype("uint16")  # as stored in a token file
    assert torch.equal(codec.decode(from_disk, "1000bps"), codec.decode(tokens[:1], "1000bps"))


def test_errors(codec, wav, tmp_path):
    tokens = codec.encode(wav, 16000, "700bps")
    bad = tokens.clone()
    bad[0, 1, 5] = 15625
    with pytest.raises(ValueError, match="stage 1, item 0, frame 5 holds 15625"):
        codec.decode(bad, "700bps")
    with pytest.raises(ValueError, match="preset '2x15625_700bps' expects tokens of shape"):
        codec.decode(tokens[:, :1], "700bps")
    with pytest.raises(ValueError, match="unknown preset 'bogus'"):
        codec.encode(wav, 16000, "bogus")
    with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
        codec.encode(wav, None)
    with pytest.raises(ValueError, match="num_samples=99999"):
        codec.decode(tokens, "700bps", num_samples=99999)

    good = codec.encode_file(save_path(tmp_path / "a.wav", wav), "700bps")
    fields = good.__dict__
    wrong_preset = TokenFile(**{**fields, "preset": "1x46656_400bps"})
    with pytest.raises(ValueError, match="preset '1x46656_400bps' has vocab sizes"):
        codec.decode_file(wrong_preset)
    with pytest.raises(ValueError, match="unknown preset 'mystery'"):
        codec.decode_file(TokenFile(**{**fields, "preset": "mystery"}))
    with pytest.raises(ValueError, match=f"model ffffffffffffffff but this codec's model is {codec.model_hash}"):
        codec.decode_file(TokenFile(**{**fields, "model_hash": "f" * 16}))
    assert codec.decode_file(TokenFile(**{**fields, "model_hash": "f" * 16}), check_hash=False).shape == wav.shape
    other_rate = TokenFile(**{**fields, "sample_rate": 8000, "frame_rate": 12.5})
    with pytest.raises(ValueError, match="at 8000 Hz / 12.5 frames/s but the model runs at 16000 Hz / 25"):
        codec.decode_file(other_rate)

    sf.write(tmp_path / "empty.wav", torch.zeros(0).numpy(), 16000)
    with pytest.raises(AudioError, match="empty.wav is empty"):
        codec.encode_file(tmp_path / "empty.wav")
    (tmp_path / "notes.wav").write_text("not audio at all")
    with pytest.raises(AudioError, match="cannot read audio file .*notes.wav"):
        codec.encode_file(tmp_path / "notes.wav")
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        codec.encode_file(tmp_path / "missing.wav")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Codec(tiny_model(), device="cuda")


def save_path(path, wav):
    save_audio(path, wav, 16000, subtype="FLOAT")
    return path


def test_stage_strings_and_user_presets(codec, wav):
    assert parse_stages("5x5:1,0.25") == [(5, 1.0), (5, 0.25)]
    assert parse_stages("3x3x3x3") == [(3, 1.0), (3, 0.5), (3, 0.25), (3, 0.125)]
    assert parse_stages("6") == [(6, 1.0)]
    with pytest.raises(ValueError, match="2 stages but 1 scales"):
        parse_stages("5x5:1")
    with pytest.raises(ValueError, match="cannot parse stages '5-5'"):
        parse_stages("5-5")
    assert torch.equal(codec.encode(wav, 16000, "5x5"), codec.encode(wav, 16000, "700bps"))
    spec = codec.add_preset("9x3", [(9, 1.0), (3, 0.125)])
    assert spec.vocab_sizes == (9**6, 3**6)
    with pytest.raises(ValueError, match="cannot cover"):
        codec.add_preset("lossy", "5x5:1,0.1")


def test_aliases_are_the_residual_presets_aliases_and_nothing_guessed():
    codec = Codec(tiny_model())
    codec.add_preset("fine_9bps", "9x3")  # a user name with a bitrate-like tail is not an alias of anything
    assert codec.aliases() == PRESET_ALIASES
    assert codec.resolve_preset("700bps") == "2x15625_700bps"
    with pytest.raises(ValueError, match="unknown preset '9bps'"):
        codec.resolve_preset("9bps")


def test_chunked_matches_whole_when_the_overlap_covers_the_receptive_field():
    # window (4, 4) at 25 Hz: receptive field ≈ ±8 frames in each of encoder and decoder, so 16 frames cover it.
    model = tiny_model(window=(4, 4))
    whole = Codec(model, chunk_seconds=None)
    wav = synth_speech(4.0, seed=3)[..., :-123]
    frames = -(-wav.shape[-1] // 640)
    exact = Codec(model, chunk_seconds=1.0, overlap_frames=16)
    tokens = whole.encode(wav, 16000, "700bps")
    assert torch.equal(exact.encode(wav, 16000, "700bps"), tokens)
    torch.testing.assert_close(exact.decode(tokens, "700bps"), whole.decode(tokens, "700bps"), atol=1e-5, rtol=0)
    seamy = Codec(model, chunk_seconds=1.0, overlap_frames=0)
    assert seamy.encode(wav, 16000, "700bps").shape == (1, 2, frames)
    assert seamy.decode(tokens, "700bps").shape == (1, frames * 640)
    assert not torch.allclose(seamy.decode(tokens, "700bps"), whole.decode(tokens, "700bps"), atol=1e-3)


@pytest.mark.parametrize("frames, chunk, overlap", [(10, 3, 0), (10, 3, 2), (7, 7, 1), (1, 1, 5), (23, 5, 50)])
def test_chunked_stitches_exact_lengths(frames, chunk, overlap):
    conv = torch.nn.Conv1d(1, 1, 5, padding=2)  # receptive field ±2 steps at 4 steps per frame
    x = torch.randn(1, 1, frames * 4)
    with torch.no_grad():
        out = chunked(conv, x, frames, 4, 4, chunk, overlap)
        assert out.shape == x.shape
        if overlap >= 1:
            torch.testing.assert_close(out, conv(x))


def test_checkpoint_export_and_ema(tmp_path, wav):
    model, ema = tiny_model(seed=0), tiny_model(seed=1)
    ckpt = write_checkpoint(tmp_path / "last.ckpt", model, ema)
    loaded = Codec.load(ckpt)
    assert loaded.weights == "ema" and loaded.model_hash == weights_hash(ema.state_dict())
    raw = Codec.load(ckpt, use_ema=False)
    assert raw.weights == "generator" and raw.model_hash == weights_hash(model.state_dict())
    assert Codec.load(write_checkpoint(tmp_path / "no_ema.ckpt", model)).model_hash == raw.model_hash

    loaded.add_preset("fine", "9x3")
    folder = loaded.export(tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    exported = Codec.load(folder)
    assert exported.model_hash == loaded.model_hash and exported.weights == "export"
    for preset in ("native", "700bps", "fine"):
        tokens = loaded.encode(wav, 16000, preset)
        assert torch.equal(exported.encode(wav, 16000, preset), tokens)
        assert torch.equal(exported.decode(tokens, preset), loaded.decode(tokens, preset))
    token_file = loaded.encode_file(save_path(tmp_path / "a.wav", wav))
    assert torch.equal(exported.decode_file(token_file), loaded.decode_file(token_file))
    with pytest.raises(ValueError, match="but this codec's model is"):
        raw.decode_file(token_file)
    in_memory = Codec(exported.model).export(tmp_path / "again")  # spec derived from the config dataclass
    assert Codec.load(in_memory / "config.json").model_hash == loaded.model_hash


def test_strict_loading_reports_keys(tmp_path):
    model = tiny_model()
    extra = write_checkpoint(tmp_path / "extra.ckpt", model, extra={"generator.bogus.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"0 missing keys \[\], 1 unexpected keys \['bogus.weight'\]"):
        Codec.load(extra)
    smaller = tiny_model(widths=(128,), stem_width=64)
    state = {f"generator.{k}": v for k, v in smaller.state_dict().items()}
    ckpt = tmp_path / "shapes.ckpt"
    torch.save({"state_dict": state, "taae": {"generator": spec_of(model), "version": __version__}}, ckpt)
    with pytest.raises(ValueError, match="shape mismatches"):
        Codec.load(ckpt)
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*text.ckpt"):
        Codec.load(tmp_path / "text.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(ValueError, match="not a taae training checkpoint"):
        Codec.load(tmp_path / "plain.ckpt")
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
        Codec.load(tmp_path / "nothing.ckpt")


def test_rvqgan_through_the_same_api(tmp_path):
    from taae.models.rvqgan import RVQGAN, RVQGANConfig

    config = RVQGANConfig(encoder_dim=8, encoder_strides=(2, 4, 5, 8), latent_dim=32, decoder_dim=32,
                          decoder_strides=(8, 5, 4, 2), n_codebooks=4, codebook_size=256, codebook_dim=4)
    codec = Codec(RVQGAN(config))
    wav = synth_speech(0.5)
    tokens = codec.encode(wav, 16000, "2q")
    assert tokens.shape == (1, 2, 25)
    assert codec.decode(tokens, "2q", num_samples=wav.shape[-1]).shape == wav.shape
    assert torch.equal(codec.encode(wav, 16000, "800bps"), tokens)  # 2 codebooks x 8 bits x 50 Hz
    assert codec.presets()["800bps"].vocab_sizes == (256, 256)
    assert codec.aliases() == {}  # its bps names are presets of their own


def test_user_presets_live_in_the_config_and_survive_export_and_checkpoints(tmp_path, wav):
    import json

    model = tiny_model()
    model.add_preset("9x3", [(9, 1.0), (3, 0.125)])  # on the model itself, not through a Codec
    assert model.config.presets["9x3"].stages == [(9, 1.0), (3, 0.125)]
    tokens = Codec(model).encode(wav, 16000, "9x3")
    folder = Codec(model).export(tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    assert config["version"] == 2 and "9x3" in config["generator"]["init_args"]["config"]["presets"]
    for source in (folder, write_checkpoint(tmp_path / "last.ckpt", model)):
        loaded = Codec.load(source)
        assert loaded.presets()["9x3"].vocab_sizes == (9**6, 3**6)
        assert torch.equal(loaded.encode(wav, 16000, "9x3"), tokens)

    # Version 1 kept user presets beside the generator config: such exports still load with them.
    del config["generator"]["init_args"]["config"]["presets"]
    config.update(version=1, presets={"old": {"stages": [[9, 1.0], [3, 0.125]], "allow_lossy": False}})
    (folder / "config.json").write_text(json.dumps(config))
    assert torch.equal(Codec.load(folder).encode(wav, 16000, "old"), tokens)
