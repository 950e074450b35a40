"""stable-codec's released TAAE (``model_config.json`` + ``model.safetensors`` / ``model.ckpt``) as a taae ``TAAE``.

Shape legend: n encoder/decoder blocks, i a block (0-based here), j a transformer layer within it.

The released model is stable-audio-tools' ``AudioAutoencoder`` (``models/autoencoders.py``: ``TAAEEncoder``,
``TAAEDecoder``, ``TAAEBlock``; ``models/transformer.py``: ``TransformerBlock``) with a ``patched`` pretransform and
a ``dithered_fsq`` bottleneck, built by ``create_autoencoder_from_config`` from the JSON. Its layout maps one to one
onto taae's TAAE with ``identity_stride1`` (no conv in a stride-1 block that keeps its width):

    official                                             taae
    encoder.layers.0                    (stem conv)      encoder.stem
    encoder.layers.{i+1}.layers.1       (strided conv)   encoder.stages.{i}.0.conv
    encoder.layers.{i+1}.layers.2.{j+1} (transformer)    encoder.stages.{i}.1.blocks.{j}
    encoder.layers.{n+2}                (head conv)      encoder.head
    decoder.layers.0 / .{n+2}                            decoder.stem / decoder.head
    decoder.layers.{i+1}.layers.0.{j+1} / .layers.2      decoder.stages.{i}.0.blocks.{j} / decoder.stages.{i}.1.conv
    pre_norm.gamma, ff_norm.gamma                        norm_attn.weight, norm_ff.weight
    self_attn.to_qkv / to_out / q_norm / k_norm          attn.qkv / attn.out / attn.q_norm / attn.k_norm
    self_attn_scale.scale, ff_scale.scale                scale_attn.gamma, scale_ff.gamma
    ff.ff.0.proj, ff.ff.2                                ff.proj_in, ff.proj_out
    weight_g, weight_v (legacy weight norm)              parametrizations.weight.original0 / original1

Two official buffers are checked rather than stored: ``pre_norm.beta`` / ``ff_norm.beta`` (a bias-free LayerNorm's
zero bias: must be zero) and ``rope.inv_freq`` (must equal taae's frequencies for head dim 128, to float32
rounding). The JSON is translated key by key. Keys the official code reads that do not change the forward pass
(``sample_size``, ``training``, ``requires_grad``/``enable_grad``, ``dither_inference``, the CTC head's
``use_proj_head``/``proj_head_dim``/``detach_proj_head``) and feature keys at the value taae computes
(``mapping_style="conv"``, ``oversampling=1``, ``postfilter_channels=0``, ``use_snake=False``, …) are accepted and
listed in the report; a key taae does not know, or a feature it does not implement (``use_snake``,
``use_dilated_conv``, ``conformer``, ``mapping_style="linear"``, a stride-1 block that changes width), is an error
naming it.

Weights come bare (the release's ``model.safetensors``) or from a training checkpoint: stable-codec's
``AutoencoderTrainingWrapper`` wraps the model in ema_pytorch's ``EMA``, so its Lightning checkpoint holds the EMA
weights under ``autoencoder_ema.ema_model.`` (taken by default) and the online ones under ``autoencoder.``
(``use_ema=False``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from taae.interop.weights import WEIGHT_NORM, apply_key_map, read_tensors, strip_prefix
from taae.models.taae import TAAE, TAAEConfig
from taae.nn.rope import RotaryEmbedding

__all__ = ["CONFIG_FILE", "StableCodecImport", "config_from_official", "find_files", "load_stable_codec"]

CONFIG_FILE = "model_config.json"
WEIGHT_FILES = ("model.safetensors", "model.ckpt")
HEAD_DIM = 128  # TAAEBlock fixes dim_heads = 128
LAYER_SCALE_INIT = 1e-2  # stable-audio-tools' LayerScale default (matters only when fine-tuning from the import)
# stable-audio-tools' DitheredFSQBottleneck default (models/bottleneck.py) when the JSON omits noise_dropout; the
# paper's value is 0.5, so an import reports when this default is taken.
NOISE_DROPOUT_DEFAULT = 0.05
# Where a file's autoencoder keys live, most preferred first. stable-codec's training wrapper
# (stable_codec/training_module.py) holds ``autoencoder`` and ``autoencoder_ema = ema_pytorch.EMA(autoencoder, ...)``,
# so its Lightning checkpoint carries the EMA weights under ``autoencoder_ema.ema_model.`` and the online weights
# twice, under ``autoencoder.`` and ``autoencoder_ema.online_model.`` (plus ``autoencoder_ema.initted``/``.step``).
EMA_PREFIX = "autoencoder_ema.ema_model."
PREFIXES = ("model.", EMA_PREFIX, "autoencoder.", "state_dict.")

_BLOCK_KEYS = {"in_channels", "out_channels", "channels", "c_mults", "strides", "transformer_depths", "latent_dim",
               "sliding_window", "use_snake", "checkpointing", "conformer", "layer_scale", "use_dilated_conv",
               "mapping_style"}
# Keys the official classes accept that select a feature taae does not implement: only the value that keeps the
# computation taae runs is accepted (stable-audio-tools models/autoencoders.py TAAEEncoder/TAAEDecoder; 0.0.20
# pretransforms.py PatchedPretransform adds oversampling and postfilter_channels).
_UNSUPPORTED = {"use_snake": False, "use_dilated_conv": False, "conformer": False, "layer_scale": True,
                "mapping_style": "conv"}
_PRETRANSFORM_UNSUPPORTED = {"oversampling": 1, "postfilter_channels": 0}
# Keys read by the official code that do not change the model's forward pass: accepted and listed in the report.
_IGNORED_TOP = {"sample_size": "training crop length (stable-codec train.py)",
                "training": "training recipe (stable-codec training_module.py), not the model"}
_IGNORED_MODEL = {"use_proj_head": "CTC projection head, not part of the autoencoder",
                  "proj_head_dim": "CTC projection head, not part of the autoencoder",
                  "detach_proj_head": "CTC projection head's gradient option (stable-codec training_module.py)"}
_IGNORED_PART = {"requires_grad": "freezes parameters in training only"}
_IGNORED_PRETRANSFORM = {"enable_grad": "pretransform gradient switch (training only)"}
_IGNORED_BOTTLENECK = {"dither_inference": "stored, never read by DitheredFSQ (models/fsq.py)"}


@dataclass
class StableCodecImport:
    """What an import found: the model, and a report of what was read, translated, checked and ignored."""

    model: TAAE
    notes: list[str] = field(default_factory=list)


def _get(mapping: dict, key: str, where: str, kind: type | tuple = object) -> Any:
    if key not in mapping:
        raise ValueError(f"{where}: required key {key!r} is missing")
    value = mapping[key]
    if not isinstance(value, kind):
        raise ValueError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _only(mapping: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}{f' (and {unknown[1:]})' if unknown[1:] else ''}; "
                         f"taae translates {sorted(allowed)}")


def _require(cfg: dict, supported: dict, where: str) -> list[str]:
    """Check that each feature key present keeps taae's computation; returns the keys found, for the report."""
    for key, value in supported.items():
        if key in cfg and cfg[key] != value:
            raise ValueError(f"{where}.{key}={cfg[key]!r} is not supported by taae's TAAE (only {value!r}); this "
                             "model cannot be imported")
    return [f"{key}={cfg[key]!r}" for key in supported if key in cfg]


def _ignored(mapping: dict, ignored: dict, where: str) -> list[str]:
    return [f"{where}.{key}: accepted, ignored ({why})" for key, why in ignored.items() if key in mapping]


def _block_config(part: dict, kind: str, where: str, notes: list[str]) -> dict:
    _only(part, {"type", "config", "soft_clip", *_IGNORED_PART}, where)
    if part.get("type") != "taae":
        raise ValueError(f"{where}.type: expected 'taae', got {part.get('type')!r}")
    notes += _ignored(part, _IGNORED_PART, where)
    if kind == "encoder" and "soft_clip" in part:
        notes.append(f"{where}.soft_clip: accepted, ignored (stable-audio-tools reads it from the decoder only)")
    cfg = _get(part, "config", where, dict)
    _only(cfg, _BLOCK_KEYS - {"out_channels" if kind == "encoder" else "in_channels"}, f"{where}.config")
    same = _require(cfg, _UNSUPPORTED, f"{where}.config")
    if same:
        notes.append(f"{where}.config: accepted, already taae's computation: {', '.join(same)}")
    return cfg


def config_from_official(config: dict, source: str = CONFIG_FILE) -> tuple[TAAEConfig, list[str]]:
    """Translate a stable-audio-tools autoencoder JSON (``taae`` encoder/decoder) into a ``TAAEConfig``.

    Returns the config and report lines (ignored sections, defaults taken).
    """
    notes = []
    _only(config, {"model_type", "sample_rate", "audio_channels", "model", *_IGNORED_TOP}, source)
    if config.get("model_type") != "autoencoder":
        raise ValueError(f"{source}.model_type: expected 'autoencoder', got {config.get('model_type')!r}")
    notes += _ignored(config, _IGNORED_TOP, source)
    if isinstance(config.get("training"), dict) and config["training"]:
        notes.append(f"{source}.training: sections {sorted(config['training'])} not read")
    if config.get("audio_channels", 1) != 1:
        raise ValueError(f"{source}.audio_channels: taae's TAAE is mono, got {config['audio_channels']!r}")
    model = _get(config, "model", source, dict)
    where = f"{source}.model"
    _only(model, {"encoder", "decoder", "bottleneck", "pretransform", "latent_dim", "downsampling_ratio",
                  "io_channels", "in_channels", "out_channels", *_IGNORED_MODEL}, where)
    notes += _ignored(model, _IGNORED_MODEL, where)
    enc = _block_config(_get(model, "encoder", where, dict), "encoder", f"{where}.encoder", notes)
    dec_part = _get(model, "decoder", where, dict)
    dec = _block_config(dec_part, "decoder", f"{where}.decoder", notes)
    for key in ("channels", "c_mults", "strides", "latent_dim", "sliding_window"):
        if enc.get(key) != dec.get(key):
            raise ValueError(f"{where}: encoder.config.{key}={enc.get(key)!r} and decoder.config.{key}="
                             f"{dec.get(key)!r} differ; taae's decoder mirrors the encoder")
    pre = _get(model, "pretransform", where, dict)
    _only(pre, {"type", "config", *_IGNORED_PRETRANSFORM}, f"{where}.pretransform")
    if pre.get("type") != "patched":
        raise ValueError(f"{where}.pretransform.type: expected 'patched', got {pre.get('type')!r}")
    notes += _ignored(pre, _IGNORED_PRETRANSFORM, f"{where}.pretransform")
    pre_cfg = _get(pre, "config", f"{where}.pretransform", dict)
    _only(pre_cfg, {"channels", "patch_size", *_PRETRANSFORM_UNSUPPORTED}, f"{where}.pretransform.config")
    same = _require(pre_cfg, _PRETRANSFORM_UNSUPPORTED, f"{where}.pretransform.config")
    if same:
        notes.append(f"{where}.pretransform.config: accepted, already taae's computation: {', '.join(same)}")
    if pre_cfg.get("channels", 1) != 1:
        raise ValueError(f"{where}.pretransform.config.channels: taae's TAAE is mono, got {pre_cfg['channels']!r}")
    patch = _get(pre_cfg, "patch_size", f"{where}.pretransform.config", int)
    bott = _get(model, "bottleneck", where, dict)
    _only(bott, {"type", "config", *_IGNORED_PART}, f"{where}.bottleneck")
    if bott.get("type") != "dithered_fsq":
        raise ValueError(f"{where}.bottleneck.type: expected 'dithered_fsq', got {bott.get('type')!r}")
    notes += _ignored(bott, _IGNORED_PART, f"{where}.bottleneck")
    bcfg = _get(bott, "config", f"{where}.bottleneck", dict)
    _only(bcfg, {"dim", "levels", "num_codebooks", "noise_dropout", *_IGNORED_BOTTLENECK}, f"{where}.bottleneck.config")
    notes += _ignored(bcfg, _IGNORED_BOTTLENECK, f"{where}.bottleneck.config")
    dim, levels = _get(bcfg, "dim", f"{where}.bottleneck.config", int), bcfg.get("levels")
    levels = [levels] * dim if isinstance(levels, int) else levels
    if not isinstance(levels, list) or len(levels) != dim or len(set(levels)) != 1:
        raise ValueError(f"{where}.bottleneck.config.levels: taae needs one level count for all {dim} dims, "
                         f"got {bcfg.get('levels')!r}")
    if bcfg.get("num_codebooks", 1) != 1:
        raise ValueError(f"{where}.bottleneck.config.num_codebooks: only 1 is supported, got {bcfg['num_codebooks']}")
    if "noise_dropout" not in bcfg:
        notes.append(f"{where}.bottleneck.config.noise_dropout absent: the official default "
                     f"{NOISE_DROPOUT_DEFAULT} is used for dither_prob")

    channels = _get(enc, "channels", f"{where}.encoder.config", int)
    widths = [c * channels for c in _get(enc, "c_mults", f"{where}.encoder.config", list)]
    strides = _get(enc, "strides", f"{where}.encoder.config", list)
    if enc.get("in_channels") != patch or dec.get("out_channels") != patch:
        raise ValueError(f"{where}: encoder in_channels ({enc.get('in_channels')}) and decoder out_channels "
                         f"({dec.get('out_channels')}) must equal the patch size {patch}")
    checks = {"latent_dim": (model.get("latent_dim"), dim), "encoder.config.latent_dim": (enc.get("latent_dim"), dim),
              "downsampling_ratio": (model.get("downsampling_ratio"), patch * math.prod(strides)),
              "io_channels": (model.get("io_channels"), 1)}
    for key, (got, want) in checks.items():
        if got != want:
            raise ValueError(f"{where}.{key}: expected {want} for this encoder, got {got!r}")
    for key in ("in_channels", "out_channels"):
        if model.get(key) not in (None, 1):
            raise ValueError(f"{where}.{key}: taae's TAAE is mono, got {model[key]!r}")
    for i, (w_in, w, s) in enumerate(zip([widths[0], *widths[:-1]], widths, strides)):
        if s == 1 and w_in != w:
            raise ValueError(f"{where}.encoder.config: block {i} has stride 1 and changes width {w_in} → {w}; "
                             "stable-audio-tools 0.0.17 then changes the frame count by ±1 and 0.0.20 cannot build "
                             "it, so taae does not import it")
    enc_depths, dec_depths = enc.get("transformer_depths"), dec.get("transformer_depths")
    taae_config = TAAEConfig(
        sample_rate=_get(config, "sample_rate", source, int), patch_size=patch, stem_width=widths[0],
        widths=tuple(widths), strides=tuple(strides), depths=tuple(enc_depths),
        decoder_depths=None if dec_depths == enc_depths else tuple(dec_depths), latent_dim=dim,
        fsq_levels=levels[0], dither_prob=float(bcfg.get("noise_dropout", NOISE_DROPOUT_DEFAULT)),
        random_levels=None, window=tuple(enc.get("sliding_window", (63, 64))), head_dim=HEAD_DIM, ffn_mult=4,
        norm_eps=1e-2, qk_norm_eps=1e-6, layer_scale_init=LAYER_SCALE_INIT,
        checkpointing=bool(enc.get("checkpointing", False)), output_tanh=bool(dec_part.get("soft_clip", False)),
        identity_stride1=True, token_rule="stable-codec",
    )
    return taae_config, notes


# -- key map ---------------------------------------------------------------------------------------------------

_BLOCK_MAP = {"norm_attn.weight": "pre_norm.gamma", "norm_ff.weight": "ff_norm.gamma",
              "attn.qkv.weight": "self_attn.to_qkv.weight", "attn.out.weight": "self_attn.to_out.weight",
              "scale_attn.gamma": "self_attn_scale.scale", "scale_ff.gamma": "ff_scale.scale"}
_BLOCK_PREFIX = {"attn.q_norm.": "self_attn.q_norm.", "attn.k_norm.": "self_attn.k_norm.",
                 "ff.proj_in.": "ff.ff.0.proj.", "ff.proj_out.": "ff.ff.2."}
_CONV = {v: k for k, v in WEIGHT_NORM.items()} | {"bias": "bias"}


def _block(rest: str) -> str:
    if rest in _BLOCK_MAP:
        return _BLOCK_MAP[rest]
    for ours, theirs in _BLOCK_PREFIX.items():
        if rest.startswith(ours):
            return theirs + rest[len(ours):]
    raise KeyError(rest)


def official_name(key: str, num_blocks: int) -> str:
    """The stable-audio-tools key that supplies taae key ``key`` (n = ``num_blocks``)."""
    rules = [
        (r"(encoder|decoder)\.stem\.(.+)", lambda m: f"{m[1]}.layers.0.{_CONV[m[2]]}"),
        (r"(encoder|decoder)\.head\.(.+)", lambda m: f"{m[1]}.layers.{num_blocks + 2}.{_CONV[m[2]]}"),
        (r"encoder\.stages\.(\d+)\.0\.conv\.(.+)", lambda m: f"encoder.layers.{int(m[1]) + 1}.layers.1.{_CONV[m[2]]}"),
        (r"decoder\.stages\.(\d+)\.1\.conv\.(.+)", lambda m: f"decoder.layers.{int(m[1]) + 1}.layers.2.{_CONV[m[2]]}"),
        (r"encoder\.stages\.(\d+)\.1\.blocks\.(\d+)\.(.+)",
         lambda m: f"encoder.layers.{int(m[1]) + 1}.layers.2.{int(m[2]) + 1}.{_block(m[3])}"),
        (r"decoder\.stages\.(\d+)\.0\.blocks\.(\d+)\.(.+)",
         lambda m: f"decoder.layers.{int(m[1]) + 1}.layers.0.{int(m[2]) + 1}.{_block(m[3])}"),
    ]
    for pattern, build in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return build(match)
    raise KeyError(f"taae key {key!r} has no stable-audio-tools counterpart")


def _buffer_checks(head_dim: int) -> dict:
    ours = RotaryEmbedding(head_dim).inv_freq.float()  # float64 frequencies rounded once to float32

    def beta(name: str, t: Tensor) -> str | None:
        return None if not t.any() else f"{name} is nonzero (max |β| {float(t.abs().max()):.3g}): taae's LayerNorm " \
                                        "has no bias"

    def inv_freq(name: str, t: Tensor) -> str | None:
        if t.shape != ours.shape or not torch.allclose(t.float(), ours, rtol=2 ** -22, atol=0):
            return f"{name} differs from taae's RoPE frequencies (rotary dim {2 * ours.numel()}, base 10000)"
        return None

    return {"pre_norm.beta": beta, "ff_norm.beta": beta, "rope.inv_freq": inv_freq}


# -- files -----------------------------------------------------------------------------------------------------

def find_files(sources: list[str | Path]) -> tuple[Path, Path]:
    """(model_config.json, weights) from a folder, or from the two files in any order."""
    paths = [Path(s) for s in sources]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"not found: {p}")
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        config = folder / CONFIG_FILE
        weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
        if not config.is_file() or weights is None:
            raise FileNotFoundError(f"{folder} is not a stable-codec model folder: it needs {CONFIG_FILE} and one of "
                                    f"{list(WEIGHT_FILES)}")
        return config, weights
    configs = [p for p in paths if p.suffix == ".json"]
    weights = [p for p in paths if p.suffix in (".safetensors", ".ckpt", ".pt", ".pth")]
    if len(paths) != 2 or len(configs) != 1 or len(weights) != 1:
        raise ValueError(f"give a stable-codec folder, or its {CONFIG_FILE} and its weights file "
                         f"(.safetensors or .ckpt); got {[str(p) for p in paths]}")
    return configs[0], weights[0]


def load_stable_codec(sources: list[str | Path], use_ema: bool = True) -> StableCodecImport:
    """Build a taae TAAE from stable-codec's released files, strictly (see the module docstring)."""
    config_path, weights_path = find_files(sources)
    try:
        official = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path}: not valid JSON ({err})") from None
    if not isinstance(official, dict):
        raise ValueError(f"{config_path}: expected a JSON object, got {type(official).__name__}")
    taae_config, notes = config_from_official(official, str(config_path))
    data = read_tensors(weights_path)
    if isinstance(data.get("metadata"), dict) and "kwargs" in data["metadata"]:
        raise ValueError(f"{weights_path} is a DAC weights file (state_dict + metadata.kwargs), not stable-codec's; "
                         "use `taae import dac`")
    if "state_dict" in data and isinstance(data["state_dict"], dict):
        data, prefix = data["state_dict"], "state_dict/"
    else:
        prefix = ""
    prefixes = PREFIXES if use_ema else tuple(p for p in PREFIXES if p != EMA_PREFIX)
    state, found = strip_prefix(data, prefixes, str(weights_path), ("encoder", "decoder"))
    if prefix or found:
        notes.append(f"{weights_path}: weights read from {prefix}{found or '(bare keys)'}")
    if use_ema and found == "autoencoder." and any(k.startswith("autoencoder_ema.") for k in data):
        raise ValueError(f"{weights_path}: has autoencoder_ema. keys but no EMA autoencoder under {EMA_PREFIX} "
                         f"(ema_pytorch's layout); pass --no-ema to import the online weights ({found})")
    if use_ema and found == "autoencoder.":
        notes.append(f"{weights_path}: no EMA weights in this checkpoint; the online weights ({found}) were loaded")
    model = TAAE(taae_config)
    n = len(taae_config.widths)
    notes += apply_key_map(model, state, lambda k: official_name(k, n), str(weights_path),
                           _buffer_checks(taae_config.head_dim))
    return StableCodecImport(model=model.eval(), notes=notes)
