"""Write the parity fixtures under tests/fixtures/interop/ from the OFFICIAL packages (never imported by taae).

Run each step with the python of the venv that ``scripts/official_env.sh`` builds (default root /work/venvs):

    /work/venvs/sat17/bin/python scripts/make_interop_fixtures.py stable-codec   # SAT 0.0.17 + stable-codec 0.1.2
    /work/venvs/sat20/bin/python scripts/make_interop_fixtures.py sat20          # SAT 0.0.20 + DAC 1.0.0

``stable-codec`` builds a small random-init TAAE with stable-audio-tools 0.0.17 (the version the released weights
were made with) and writes it the way the released model is published (``model_config.json`` +
``model.safetensors`` with bare ``AudioAutoencoder`` keys), plus the official outputs on 1 s of real speech
(pre-bottleneck latents, native and post-hoc tokens of every preset, decoded audio) and stable-codec's own
residual-FSQ tokens on probe latents that hit rounding ties. At 1 s (50 frames at the 50 Hz stage, ≤ 64) SAT
0.0.17's full-attention fallback equals windowed attention, so these outputs are the reference for the weights.
``sat20`` loads the same weights into SAT 0.0.20 and runs 8 s of speech through its windowed CPU fallback, and
through SAT 0.0.17's full attention (recorded by the first step), and builds a tiny random-init DAC 1.0.0 saved
with DAC's own ``save(package=False)``.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["stable-codec", "sat20"])
    args = parser.parse_args()
    {"stable-codec": stable_codec_step, "sat20": sat20_step}[args.step]()


if __name__ == "__main__":
    main()
