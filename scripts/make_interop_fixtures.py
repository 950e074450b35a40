"""Write the parity fixtures under tests/fixtures/interop/ from the OFFICIAL packages (never imported by taae).

Run each step with the python of the venv that ``scripts/official_env.sh`` builds (default root /work/venvs):

    /work/venvs/sat17/bin/python scripts/make_interop_fixtures.py stable-codec   # SAT 0.0.17 + stable-codec 0.1.2
    /work/venvs/sat20/bin/python scripts/make_interop_fixtures.py sat20          # SAT 0.0.20 + DAC 1.0.0
    /work/venvs/sat17/bin/python scripts/make_interop_fixtures.py schema17       # full config + trainer ckpt
    /work/venvs/sat20/bin/python scripts/make_interop_fixtures.py schema20       # full config + DAC.save files

``stable-codec`` builds a small random-init TAAE with stable-audio-tools 0.0.17 (the version the released weights
were made with) and writes it the way the released model is published (``model_config.json`` +
``model.safetensors`` with bare ``AudioAutoencoder`` keys), plus the official outputs on 1 s of real speech
(pre-bottleneck latents, native and post-hoc tokens of every preset, decoded audio) and stable-codec's own
residual-FSQ tokens on probe latents that hit rounding ties. At 1 s (50 frames at the 50 Hz stage, ≤ 64) SAT
0.0.17's full-attention fallback equals windowed attention, so these outputs are the reference for the weights.
``sat20`` loads the same weights into SAT 0.0.20 and runs 8 s of speech through its windowed CPU fallback, and
through SAT 0.0.17's full attention (recorded by the first step), and builds a tiny random-init DAC 1.0.0 saved
with DAC's own ``save(package=False)``.

``schema17`` writes what the official tools really write, beyond the released folder: the small model's config
with the full schema of a stable-audio-tools autoencoder config (``sample_size``, ``training`` with optimiser, loss,
evaluation and demo sections, every encoder/decoder/bottleneck/pretransform key SAT 0.0.17's classes accept, the
training wrapper's projection-head keys), built by the official factory with the committed weights, and its
outputs; and a Lightning checkpoint written by stable-codec's own ``AutoencoderTrainingWrapper`` (ema_pytorch EMA,
a discriminator, AdamW) after a few real ``Trainer.fit`` steps on random audio, so its EMA and online weights
differ, with both of the module's own state dicts saved beside it. ``schema20`` does the same full-schema config
for SAT 0.0.20 (``mapping_style``, ``oversampling``, ``postfilter_channels``), and writes the two files
``DAC.save`` makes: the torch.package archive of its default (``package=True``) and ``package=False``.

Random weights are drawn so that every parameter matters (LayerScale, norms and weight-norm gains around 1, biases
nonzero) and rounded to float16-representable values, so the weights can be stored as float16 without loss while
both implementations compute in float32. Buffers (``*.beta``, ``rope.inv_freq``) stay float32 as in the released
files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the official venvs do not have taae installed; the tests' input builder is plain
from tests.interop.common import FIXTURES as OUT  # noqa: E402
from tests.interop.common import STABLE_CODEC_DIR as TAAE_DIR  # noqa: E402
from tests.interop.common import speech  # noqa: E402 (the tests rebuild the inputs the same way)

SEED = 1234

BLOCK = {"channels": 128, "c_mults": [1, 2], "strides": [1, 2], "latent_dim": 6, "sliding_window": [63, 64]}
TAAE_CONFIG = {
    "model_type": "autoencoder",
    "sample_rate": 16000,
    "audio_channels": 1,
    "model": {
        "pretransform": {"type": "patched", "config": {"channels": 1, "patch_size": 320}},
        # Two heads at the 25 Hz stage (width 256), one at 50 Hz; the decoder's 25 Hz stage has no layer, so its
        # depths differ from the encoder's (this keeps the committed weights small).
        "encoder": {"type": "taae", "config": {"in_channels": 320, **BLOCK, "transformer_depths": [1, 1]}},
        "decoder": {"type": "taae", "config": {"out_channels": 320, **BLOCK, "transformer_depths": [1, 0]}},
        "bottleneck": {"type": "dithered_fsq",
                       "config": {"dim": 6, "levels": 17, "num_codebooks": 1, "noise_dropout": 0.5}},
        "latent_dim": 6,
        "downsampling_ratio": 640,
        "io_channels": 1,
    },
}
PRESETS = ["1x46656_400bps", "2x15625_700bps", "4x729_1000bps"]
DAC_KWARGS = dict(encoder_dim=4, encoder_rates=[2, 4, 5, 8], latent_dim=None, decoder_dim=32,
                  decoder_rates=[8, 5, 4, 2], n_codebooks=4, codebook_size=64, codebook_dim=4,
                  quantizer_dropout=False, sample_rate=16000)


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:16]


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int) -> None:
    """Give every parameter a value that matters, rounded to float16-representable float32."""
    g = torch.Generator().manual_seed(seed)

    def uniform(p, lo, hi):
        p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=g))

    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("scale", "gamma", "alpha") or name.endswith("norm.weight"):
            uniform(p, 0.5, 1.5)  # LayerScale, LayerNorm gains, Snake alphas
        elif leaf == "bias":
            uniform(p, -0.1, 0.1)
        elif leaf == "weight_g":
            p.mul_(0.5 + torch.rand(p.shape, generator=g))
        p.copy_(p.half().float())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def tie_probes() -> torch.Tensor:
    """(1, 6, N) float32 pre-tanh latents: exact zeros and saturated values, values within a few float32 ulps of
    every preset's rounding boundaries (where two rounding rules or two float orders part), then random ones."""
    boundaries = sorted({k / 8 for k in range(-7, 8)} | {k / 16 for k in range(-15, 16, 2)}
                        | {0.4 * k - 0.8 for k in range(5)} | {0.5 * k - 0.75 for k in range(4)})
    values = [0.0, 20.0, -20.0, 1e-30, -1e-30]
    for b in boundaries:
        x = torch.atanh(torch.tensor(b, dtype=torch.float64)).float()
        for step in range(-3, 4):
            y = x.clone()
            for _ in range(abs(step)):
                y = torch.nextafter(y, torch.tensor(math.copysign(math.inf, step)))
            values.append(float(y))
    g = torch.Generator().manual_seed(SEED)
    special = torch.tensor(values, dtype=torch.float32)
    mixed = special[torch.randint(len(values), (6, 600), generator=g)]  # special values, mixed across dims
    rand = 1.5 * torch.randn(6, 1400, generator=g)
    return torch.cat([special.expand(6, -1), mixed, rand], dim=1).unsqueeze(0)


@torch.no_grad()
def stable_codec_step() -> None:
    from safetensors.torch import save_file
    from stable_audio_tools.models import create_model_from_config
    from stable_codec import StableCodec
    from stable_codec.fsq import DitheredFSQ as FixedFSQ
    from stable_codec.residual_fsq import ResidualFSQBottleneck

    TAAE_DIR.mkdir(parents=True, exist_ok=True)
    (TAAE_DIR / "model_config.json").write_text(json.dumps(TAAE_CONFIG, indent=2) + "\n")
    torch.manual_seed(SEED)
    model = create_model_from_config(TAAE_CONFIG).eval()
    randomise(model, SEED)
    state = model.state_dict()
    stored = {k: (v.half() if k.rsplit(".", 1)[-1] not in ("beta", "inv_freq") else v) for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in stored.items()}, str(TAAE_DIR / "model.safetensors"))

    codec = StableCodec(model_config_path=str(TAAE_DIR / "model_config.json"), device=torch.device("cpu"))
    codec.model.load_state_dict(state, strict=True)
    x = speech(1.0)
    out: dict[str, torch.Tensor] = {}
    latents, tokens = codec.encode(x)  # tensor input: no resampling / loudness, as the official API does
    codes = codec.model.bottleneck.encode(latents)
    out["pre_bottleneck_latents"] = latents
    out["native_codes"] = codes
    out["native_tokens_sat017"] = tokens[..., 0].long()  # SAT 0.0.17's float32 index sum, wrong on some frames
    out["native_audio"] = codec.decode(tokens)
    out["codes_audio"] = codec.model.decode(codes)
    for name in PRESETS:
        codec.set_posthoc_bottleneck(name)
        _, toks = codec.encode(x, posthoc_bottleneck=True)
        out[f"{name}/tokens"] = torch.stack([t[..., 0] for t in toks], dim=1)  # (B, K, S)
        out[f"{name}/latent"] = codec.residual_fsq.decode(toks)
        out[f"{name}/audio"] = codec.decode(toks, posthoc_bottleneck=True)

    probes = tie_probes()
    out["probe/latents"] = probes
    fixed = FixedFSQ([17] * 6).eval()
    probe_codes, probe_idx = fixed(probes.transpose(1, 2))
    out["probe/native_tokens"] = probe_idx[..., 0]
    out["probe/native_codes"] = probe_codes.transpose(1, 2)
    for name in PRESETS:
        rfsq = ResidualFSQBottleneck(codec.preset_bottleneck_configs[name]).eval()
        toks = rfsq.encode(probes)
        out[f"probe/{name}/tokens"] = torch.stack([t[..., 0] for t in toks], dim=1)
        out[f"probe/{name}/latent"] = rfsq.decode(toks)

    long_x = speech(8.0)
    long_lat, long_info = codec.model.encode(long_x, return_info=True)
    out["long/latent_full_attention_sat017"] = long_info["pre_bottleneck_latents"]
    out["long/audio_full_attention_sat017"] = codec.model.decode(long_lat).half()  # only shows the size of the bug

    meta = {"generator": "scripts/make_interop_fixtures.py stable-codec", "seed": SEED,
            "packages": {"stable-audio-tools": "0.0.17", "stable-codec": "0.1.2", "torch": torch.__version__},
            "input": {"seconds": 1.0, "sha256_16": digest(x)}, "long_input": {"seconds": 8.0,
                                                                              "sha256_16": digest(long_x)},
            "presets": PRESETS}
    save_tensors(OUT / "stable_codec_outputs.safetensors", out, meta)
    print("wrote", TAAE_DIR, "and", OUT / "stable_codec_outputs.safetensors")


@torch.no_grad()
def sat20_step() -> None:
    import stable_audio_tools.models.transformer as sat_transformer
    from safetensors.torch import load_file
    from stable_audio_tools.models import create_model_from_config

    # The chunked-halo SDPA fallback: SAT 0.0.20's windowed path without FlexAttention, which agrees with the
    # compiled FlexAttention path to 2.7e-7 and does not recompile for every input length.
    sat_transformer.flex_attention_available = False
    config = json.loads((TAAE_DIR / "model_config.json").read_text())
    model = create_model_from_config(config).eval()
    state = {k: v.float() for k, v in load_file(str(TAAE_DIR / "model.safetensors")).items()}
    model.load_state_dict(state, strict=True)
    long_x = speech(8.0)
    latent = model.encoder(model.pretransform.encode(long_x))  # 0.0.20's encode no longer returns it
    codes = model.bottleneck.encode(latent)
    out = {"long/latent": latent, "long/codes": codes, "long/audio": model.decode(codes)}
    meta = {"generator": "scripts/make_interop_fixtures.py sat20", "attention": "chunked SDPA windowed fallback",
            "packages": {"stable-audio-tools": "0.0.20", "torch": torch.__version__},
            "long_input": {"seconds": 8.0, "sha256_16": digest(long_x)}}
    save_tensors(OUT / "sat020_outputs.safetensors", out, meta)

    import dac

    torch.manual_seed(SEED)
    net = dac.DAC(**DAC_KWARGS).eval()
    randomise(net, SEED + 1)
    path = OUT / "dac_tiny" / "weights.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    net.save(str(path), package=False)  # {"state_dict", "metadata": {"kwargs"}}, as the released weights
    x = speech(1.0)
    z, codes, latents, _, _ = net.encode(x)
    audio = net.decode(z)
    dac_out = {"codes": codes, "z": z, "audio": audio}
    meta = {"generator": "scripts/make_interop_fixtures.py sat20", "packages": {"descript-audio-codec": "1.0.0"},
            "kwargs": DAC_KWARGS, "input": {"seconds": 1.0, "sha256_16": digest(x)},
            "audio_samples": int(audio.shape[-1])}
    save_tensors(OUT / "dac_outputs.safetensors", dac_out, meta)
    print("wrote", OUT / "sat020_outputs.safetensors", path, OUT / "dac_outputs.safetensors")


# -- what the official tools really write (issue 22) ------------------------------------------------------------

SCHEMA_DIR = OUT / "stable_codec_schema"
TRAINED_DIR = OUT / "stable_codec_trained"
# SAT 0.0.17's TAAEBlock takes exactly these (its TAAEEncoder/TAAEDecoder forward **kwargs to it, so any other key
# is a TypeError there), each at the value that keeps the computation taae runs.
BLOCK_FLAGS17 = {"use_snake": False, "checkpointing": False, "conformer": False, "layer_scale": True,
                 "use_dilated_conv": False}
# SAT 0.0.17's InverseLR passes ``verbose`` positionally to torch's LRScheduler, which torch 2.14 no longer takes;
# a torch scheduler fills the same "scheduler" slot of the schema.
SCHEDULER = {"type": "ExponentialLR", "config": {"gamma": 0.999999}}
TRAINING = {  # stable-codec training_module.py create_training_wrapper_from_config reads all of these
    "learning_rate": 1e-4, "warmup_steps": 0, "encoder_freeze_on_warmup": False, "use_ema": True,
    "latent_mask_ratio": 0.0, "encoder_mask_ratio": 0.0, "force_input_mono": False, "use_ctc": False,
    "optimizer_configs": {
        "autoencoder": {"optimizer": {"type": "AdamW", "config": {"lr": 3e-3, "betas": [0.8, 0.99],
                                                                   "weight_decay": 1e-3}},
                        "scheduler": SCHEDULER},
        "discriminator": {"optimizer": {"type": "AdamW", "config": {"lr": 3e-3, "betas": [0.8, 0.99],
                                                                     "weight_decay": 1e-3}},
                          "scheduler": SCHEDULER},
    },
    "loss_configs": {
        "discriminator": {"type": "encodec", "config": {"filters": 2, "max_filters": 4, "n_ffts": [32],
                                                        "hop_lengths": [8], "win_lengths": [32]},
                          "weights": {"adversarial": 0.1, "feature_matching": 5.0}},
        "spectral": {"type": "mrstft", "config": {"fft_sizes": [64, 32], "hop_sizes": [16, 8],
                                                  "win_lengths": [64, 32], "perceptual_weighting": False},
                     "weights": {"mrstft": 1.0}},
        "time": {"type": "l1", "weights": {"l1": 1.0}},
    },
    "eval_loss_configs": {"stft": {"fft_size": 64, "hop_size": 16, "win_length": 64}, "sisdr": {}},
    "demo": {"demo_every": 2000, "demo_cond": []},
}


def full_schema(config: dict, block_extra: dict, patch_extra: dict) -> dict:
    """``config`` with every key the official code reads around the model, at values that keep its computation."""
    full = json.loads(json.dumps(config))
    full["sample_size"] = 16000
    full["training"] = TRAINING
    model = full["model"]
    model.update(use_proj_head=False, proj_head_dim=64, detach_proj_head=False)
    for part in ("encoder", "decoder"):
        model[part]["config"].update(BLOCK_FLAGS17 | block_extra)
        model[part]["requires_grad"] = True
    model["decoder"]["soft_clip"] = False
    model["bottleneck"]["requires_grad"] = True
    model["bottleneck"]["config"]["dither_inference"] = False
    # SAT runs the pretransform's encode and decode under no_grad unless enable_grad: with false, a patched model's
    # decoder gets no gradient at all, so a trainable stable-codec config must say true.
    model["pretransform"]["enable_grad"] = True
    model["pretransform"]["config"].update(patch_extra)
    return full


@torch.no_grad()
def schema_outputs(config: dict, name: str, version: str) -> None:
    """Build ``config`` with the official factory, load the committed small weights, save its outputs."""
    from safetensors.torch import load_file
    from stable_audio_tools.models import create_model_from_config

    model = create_model_from_config(config).eval()
    state = {k: v.float() for k, v in load_file(str(TAAE_DIR / "model.safetensors")).items()}
    model.load_state_dict(state, strict=True)
    x = speech(1.0)
    latent = model.encoder(model.pretransform.encode(x))
    codes = model.bottleneck.encode(latent)
    out = {"latent": latent, "codes": codes, "audio": model.decode(codes)}
    meta = {"generator": f"scripts/make_interop_fixtures.py {name}", "config": f"model_config_sat{version}.json",
            "packages": {"stable-audio-tools": version, "torch": torch.__version__},
            "input": {"seconds": 1.0, "sha256_16": digest(x)}}
    save_tensors(OUT / f"schema_sat{version.replace('.', '')}_outputs.safetensors", out, meta)


def schema17_step() -> None:
    import sys as _sys
    import types

    # SAT 0.0.17's training.losses imports pypesq (metrics.py), which does not build; PESQ is an evaluation metric
    # the wrapper below never runs.
    _sys.modules.setdefault("pypesq", types.ModuleType("pypesq")).pesq = None
    import ema_pytorch
    import pytorch_lightning as pl
    from stable_audio_tools.models import create_model_from_config
    from stable_codec.training_module import create_training_wrapper_from_config

    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    config = full_schema(TAAE_CONFIG, {}, {})
    (SCHEMA_DIR / "model_config_sat0.0.17.json").write_text(json.dumps(config, indent=2) + "\n")
    schema_outputs(config, "schema17", "0.0.17")

    # The smallest model taae can hold (width 128 = one head, though no layer here; a stride-1 stage is an
    # identity), so three copies (online, EMA, EMA's online reference) and AdamW state stay a few hundred KB.
    tiny = json.loads(json.dumps(TAAE_CONFIG))
    block = {"channels": 128, "c_mults": [1], "strides": [1], "latent_dim": 6, "sliding_window": [63, 64],
             "transformer_depths": [0]}
    tiny["model"]["pretransform"]["config"]["patch_size"] = 2
    tiny["model"]["encoder"]["config"] = {"in_channels": 2, **block}
    tiny["model"]["decoder"]["config"] = {"out_channels": 2, **block}
    tiny["model"]["downsampling_ratio"] = 2
    tiny = full_schema(tiny, {}, {})
    tiny["sample_size"] = 512
    TRAINED_DIR.mkdir(parents=True, exist_ok=True)
    (TRAINED_DIR / "model_config.json").write_text(json.dumps(tiny, indent=2) + "\n")

    pl.seed_everything(SEED)
    model = create_model_from_config(tiny)
    module = create_training_wrapper_from_config(tiny, model)
    g = torch.Generator().manual_seed(SEED)
    reals = 0.5 * torch.randn(8, 1, tiny["sample_size"], generator=g)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(reals, torch.zeros(8)), batch_size=2)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=8, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    with torch.enable_grad():
        trainer.fit(module, data)
    path = TRAINED_DIR / "model.ckpt"
    trainer.save_checkpoint(str(path))  # the Lightning save stable-codec's train.py gets from ModelCheckpoint
    ema = module.autoencoder_ema.ema_model.state_dict()
    online = module.autoencoder.state_dict()
    gap = max((ema[k].float() - online[k].float()).abs().max().item() for k in online if online[k].is_floating_point())
    assert gap > 1e-4, f"EMA and online weights must differ for the test to tell them apart, max gap {gap}"
    x = speech(0.1)
    out = {**{f"ema/{k}": v for k, v in ema.items()}, **{f"online/{k}": v for k, v in online.items()}}
    with torch.no_grad():
        for name, m in (("ema", module.autoencoder_ema.ema_model.eval()), ("online", module.autoencoder.eval())):
            out[f"{name}_audio"] = m.decode(m.encode(x))
    keys = sorted(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    meta = {"generator": "scripts/make_interop_fixtures.py schema17", "seed": SEED, "steps": trainer.global_step,
            "max_abs_ema_minus_online": gap, "ckpt_state_dict_roots": sorted({".".join(k.split(".")[:2])
                                                                               for k in keys}),
            "packages": {"stable-audio-tools": "0.0.17", "stable-codec": "0.1.2",
                         "ema-pytorch": getattr(ema_pytorch, "__version__", "0.2.3"),
                         "pytorch-lightning": pl.__version__, "torch": torch.__version__},
            "input": {"seconds": 0.1, "sha256_16": digest(x)}}
    save_tensors(OUT / "stable_codec_trained_outputs.safetensors", out, meta)
    print("wrote", SCHEMA_DIR, TRAINED_DIR, "gap", gap, "keys", meta["ckpt_state_dict_roots"])


def schema20_step() -> None:
    import stable_audio_tools.models.transformer as sat_transformer

    sat_transformer.flex_attention_available = False  # as in sat20_step; 1 s is within the window anyway
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    config = full_schema(TAAE_CONFIG, {"mapping_style": "conv"}, {"oversampling": 1, "postfilter_channels": 0})
    (SCHEMA_DIR / "model_config_sat0.0.20.json").write_text(json.dumps(config, indent=2) + "\n")
    schema_outputs(config, "schema20", "0.0.20")

    import dac

    # DAC.save's default (package=True) writes a torch.package archive: pickled code, which taae refuses. Only
    # its format matters, so the smallest DAC keeps the file small.
    torch.manual_seed(SEED)
    net = dac.DAC(encoder_dim=2, encoder_rates=[2, 2], latent_dim=None, decoder_dim=4, decoder_rates=[2, 2],
                  n_codebooks=1, codebook_size=4, codebook_dim=2, sample_rate=16000).eval()
    folder = OUT / "dac_tiny"
    net.save(str(folder / "weights_package.pth"))
    print("wrote", SCHEMA_DIR, folder / "weights_package.pth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = {"stable-codec": stable_codec_step, "sat20": sat20_step, "schema17": schema17_step,
             "schema20": schema20_step}
    parser.add_argument("step", choices=list(steps))
    steps[parser.parse_args().step]()


if __name__ == "__main__":
    main()
