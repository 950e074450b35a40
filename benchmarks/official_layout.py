"""taae models in the official packages' layouts, for the side-by-side benchmarks (not a converter for users).

- TAAE → stable-audio-tools' ``AudioAutoencoder`` (``models/autoencoders.py``: ``TAAEEncoder``/``TAAEDecoder`` of
  ``TAAEBlock``s holding ``models/transformer.py`` ``TransformerBlock``s), built by ``create_model_from_config``
  from the config :func:`sat_config` returns. The model must have ``identity_stride1=True`` (stable-audio-tools
  has no conv at a stride-1 stage), so both sides compute the same function with the same work.
- RVQGAN → descript-audio-codec 1.0.0's ``dac.DAC``.

The key maps are issue 11's released-weights importers read backwards (``taae.interop.stable_codec.official_name``,
``taae.interop.dac.official_name``), so the benchmark and ``taae import`` agree on every name by construction.
"""

from __future__ import annotations

from torch import Tensor

from taae.interop.dac import official_name as dac_name
from taae.interop.stable_codec import official_name


def sat_config(config) -> dict:
    """stable-audio-tools' model config for a ``TAAEConfig`` (ValueError where its layout cannot express it)."""
    c = config
    if c.stem_width != c.widths[0] or any(w % c.widths[0] for w in c.widths):
        raise ValueError(f"stable-audio-tools needs stem_width == widths[0] and widths that are multiples of it, "
                         f"got stem_width={c.stem_width}, widths={c.widths}")
    if c.head_dim != 128 or c.ffn_mult != 4 or c.norm_eps != 1e-2 or c.decoder_depths not in (None, c.depths):
        raise ValueError("stable-audio-tools' TAAEBlock fixes head_dim 128, ffn_mult 4, norm_eps 1e-2 and a mirrored "
                         "decoder")
    widths = (c.widths[0], *c.widths)
    for i, s in enumerate(c.strides):
        if s == 1 and widths[i] != widths[i + 1]:
            raise ValueError(f"stage {i}: a stride-1 stage cannot change the width in stable-audio-tools")
    shape = {"channels": c.widths[0], "c_mults": [w // c.widths[0] for w in c.widths], "strides": list(c.strides),
             "transformer_depths": list(c.depths), "latent_dim": c.latent_dim, "sliding_window": list(c.window)}
    return {
        "model_type": "autoencoder", "sample_rate": c.sample_rate, "audio_channels": 1,
        "model": {
            "pretransform": {"type": "patched", "config": {"channels": 1, "patch_size": c.patch_size}},
            "encoder": {"type": "taae", "config": {"in_channels": c.patch_size, **shape}},
            "decoder": {"type": "taae", "config": {"out_channels": c.patch_size, **shape}},
            "bottleneck": {"type": "dithered_fsq", "config": {"dim": c.latent_dim, "levels": c.fsq_levels,
                                                              "num_codebooks": 1, "noise_dropout": c.dither_prob}},
            "latent_dim": c.latent_dim, "downsampling_ratio": c.hop_length, "io_channels": 1,
        },
    }


def sat_state_dict(model) -> dict[str, Tensor]:
    """Our TAAE's weights under stable-audio-tools' keys (rope.inv_freq and the zero LayerNorm betas excluded:
    the official model keeps its own)."""
    if not model.config.identity_stride1:
        raise ValueError("build the TAAE with identity_stride1=True: stable-audio-tools has no stride-1 conv")
    blocks = len(model.config.widths)
    return {official_name(k, blocks): v.detach().clone() for k, v in model.state_dict().items()
            if not k.endswith("rope.inv_freq")}


def dac_kwargs(config) -> dict:
    """``dac.DAC(**kwargs)`` for an ``RVQGANConfig`` (quantizer dropout off: inference)."""
    return {"encoder_dim": config.encoder_dim, "encoder_rates": list(config.encoder_strides),
            "latent_dim": config.latent_dim, "decoder_dim": config.decoder_dim,
            "decoder_rates": list(config.decoder_strides), "n_codebooks": config.n_codebooks,
            "codebook_size": config.codebook_size, "codebook_dim": config.codebook_dim,
            "quantizer_dropout": False, "sample_rate": config.sample_rate}


def dac_state_dict(model) -> dict[str, Tensor]:
    return {dac_name(k): v.detach().clone() for k, v in model.state_dict().items()}
