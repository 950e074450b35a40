"""TAAE: patched waveform → transformer encoder → 6-dim FSQ at 25 Hz → mirror decoder (docs/architecture.md §1).

Shape legend: B batch, T samples, P patch size, N frames at a stage's rate, C width, D latent dim, S latent
frames, K tokens per frame.

    wav (B,1,T) ─pad→ (B,1,T') ─patch→ (B,P,T'/P) ─stem→ E_0 … E_n ─head→ z (B,D,S)
    z ─tanh→ FSQ ─→ codes (B,D,S) ─stem→ D_n … D_0 ─head→ (B,P,T'/P) ─unpatch→ (B,1,T') ─crop→ (B,1,T)

Stage i (encoder): strided conv (stride s_i, width w_{i-1} → w_i) then ``depths[i]`` transformer layers at w_i.
The decoder mirrors it: transformer layers at w_i, then a transposed conv back to w_{i-1}.
Defaults follow the paper where it speaks (patch 320, hop 640 → 25 Hz, D = 6, 17 levels, window 128 frames,
head dim 128); the widths and depths are ours (the paper's are not published, §5).

``causal: true`` builds the paper's causal variant (arXiv 2411.19842, Table 11; §9 item 13): the same layers with
left-padded convs (:mod:`taae.nn.causal_conv`) and windows (left, 0), so every output depends only on the past and
the current 40 ms frame. It streams exactly (:mod:`taae.codec.streaming`) and has the non-causal model's parameter
names.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import torch
from einops import rearrange
from torch import Tensor, nn

from taae.models.base import GeneratorOutput, count_parameters, pad_to_multiple
from taae.models.flops import ComputeAccounting, FlopCount, taae_flops
from taae.nn.causal_conv import conv_layers
from taae.nn.heads import ISTFTHead, OverlapAddHead
from taae.nn.transformer import Transformer
from taae.quantizers.fsq import FSQ
from taae.quantizers.presets import ResidualPreset, ResidualPresets, as_preset
from taae.quantizers.residual_fsq import PRESET_ALIASES, PostHocResidualFSQ
from taae.quantizers.stages import STAGES_PATTERN, parse_stages
from taae.quantizers.token_spec import TokenSpec

HEADS = ("patch", "overlap_add", "istft")
"""The decoder output heads ``TAAEConfig.head`` can name."""


@dataclass
class TAAEConfig:
    """Everything that defines a TAAE model; the YAML's ``generator.init_args.config``."""

    sample_rate: int = 16000
    """Audio sample rate in Hz (docs/architecture.md §1: 16 kHz)."""
    patch_size: int = 320
    """Samples per patch: the polyphase reshape that opens the encoder (docs/architecture.md §1, paper)."""
    stem_width: int = 256
    """Channels of the stem conv after patching (ours)."""
    widths: tuple[int, ...] = (256, 512)
    """Transformer width of each stage; each must be a multiple of ``head_dim`` (ours)."""
    strides: tuple[int, ...] = (1, 2)
    """Downsampling of each stage; patch·Πstrides is the hop (docs/architecture.md §1: 320·2 = 640 → 25 Hz)."""
    depths: tuple[int, ...] = (2, 2)
    """Transformer layers per encoder stage; the decoder mirrors them (ours)."""
    decoder_depths: tuple[int, ...] | None = None
    """Decoder layers per stage, in encoder order; None mirrors ``depths``."""
    latent_dim: int = 6
    """FSQ dimensions (§3: 6)."""
    fsq_levels: int = 17
    """Levels per dimension of the trained FSQ (§3: 17)."""
    dither_prob: float = 0.5
    """p of the two per-item Bernoulli draws of the dither mix (§3: 0.5 → 50% noise, 25% STE, 25% clean)."""
    random_levels: tuple[int, ...] | None = (5, 9, 17)
    """Levels drawn per item during training so that coarser post-hoc grids stay in range (§3, paper only)."""
    window: tuple[int, int] = (63, 64)
    """Keys visible to query i: i−left … i+right (§5: 128 frames, released code (63, 64))."""
    head_dim: int = 128
    """Attention head dim (§5: 128, heads = width / 128)."""
    ffn_mult: int = 4
    """SwiGLU hidden multiplier (§5)."""
    norm_eps: float = 1e-2
    """LayerNorm ε, raised from 1e-5 so that silence cannot blow up the normalisation (§5)."""
    qk_norm_eps: float = 1e-6
    layer_scale_init: float = 1e-5
    """LayerScale init on both residual branches (§5, released code)."""
    attention_backend: str = "auto"
    """windowed_attention backend: auto | naive | sdpa | chunked | flex | flash."""
    checkpointing: bool = False
    """Activation checkpointing per transformer layer (saves memory, costs one extra forward)."""
    output_tanh: bool = False
    """Soft-clip the output waveform with tanh (a config flag of the released code, off by default)."""
    identity_stride1: bool = False
    """Stride-1 stages whose width does not change get no conv, as stable-audio-tools' TAAEBlock builds them
    (needed to load the released weights, see taae.interop); False gives every stage taae's 1×1 projection."""
    token_rule: str = "taae"
    """How post-hoc tokens are formed: ``taae`` (canonical, round half up) or ``stable-codec`` (that package's own
    rounding and float order, so that its token datasets and ours agree; see taae.quantizers.stable_codec_tokens)."""
    presets: dict[str, ResidualPreset] = field(default_factory=dict)
    """User post-hoc residual FSQ presets by name, beside the built-in 400/700/1000 bps ones (§4); ``add_preset``
    records here, so exports and checkpoints that carry the config keep them."""
    head: str = "patch"
    """Decoder output head: ``patch`` (the paper's conv to non-overlapping patches), ``overlap_add`` (Hann-windowed
    frames of two patches, overlap-added) or ``istft`` (log-magnitude and phase, inverted by ``torch.istft``, as
    Vocos); see :mod:`taae.nn.heads` and the learning curves in README.md (ours)."""
    causal: bool = False
    """Causal variant (§9 item 13): left-padded convs, past-only transposed convs; needs ``window`` (left, 0). The
    paper's causal model has a 2.56 s per-layer field (arXiv 2411.19842 Table 11), i.e. window (63, 0) at 25 Hz."""

    def __post_init__(self):
        for name in ("widths", "strides", "depths", "window"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.decoder_depths is not None:
            self.decoder_depths = tuple(int(v) for v in self.decoder_depths)
        if self.random_levels is not None:
            self.random_levels = tuple(int(v) for v in self.random_levels)
        if not isinstance(self.presets, dict):
            raise ValueError(f"presets must be a mapping of name to {{stages, allow_lossy}}, got {self.presets!r}")
        self.presets = {name: as_preset(name, value) for name, value in self.presets.items()}
        if not (len(self.widths) == len(self.strides) == len(self.depths)) or not self.widths:
            raise ValueError(
                f"widths, strides and depths need one entry per stage, got {len(self.widths)}, "
                f"{len(self.strides)} and {len(self.depths)}"
            )
        if self.decoder_depths is not None and len(self.decoder_depths) != len(self.depths):
            raise ValueError(f"decoder_depths needs {len(self.depths)} entries, got {len(self.decoder_depths)}")
        for w in self.widths:
            if w <= 0 or w % self.head_dim:
                raise ValueError(
                    f"widths: every width must be a positive multiple of head_dim={self.head_dim}, got {w}"
                )
        if any(s < 1 for s in self.strides):
            raise ValueError(f"strides must be >= 1, got {self.strides}")
        if any(d < 0 for d in self.depths):
            raise ValueError(f"depths must be >= 0, got {self.depths}")
        for name in ("sample_rate", "patch_size", "stem_width", "latent_dim", "head_dim", "ffn_mult"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.fsq_levels < 2:
            raise ValueError(f"fsq_levels must be >= 2, got {self.fsq_levels}")
        if len(self.window) != 2 or min(self.window) < 0:
            raise ValueError(f"window must be (left, right) with both >= 0, got {self.window}")
        if not 0.0 <= self.dither_prob <= 1.0:
            raise ValueError(f"dither_prob must be in [0, 1], got {self.dither_prob}")
        if self.token_rule not in ("taae", "stable-codec"):
            raise ValueError(f"token_rule must be 'taae' or 'stable-codec', got {self.token_rule!r}")
        ins = (self.stem_width, *self.widths[:-1])
        for i, (w_in, w, s) in enumerate(zip(ins, self.widths, self.strides)):
            if self.identity_stride1 and s == 1 and w_in != w:
                raise ValueError(f"identity_stride1: stage {i} has stride 1 but changes the width {w_in} → {w}; "
                                 "an identity cannot do that")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got {self.head!r}")
        if self.causal and self.head != "patch":
            raise ValueError(f"head: a causal TAAE streams patch by patch and needs head 'patch', got {self.head!r}")
        if self.causal and self.window[1] != 0:
            raise ValueError(f"window: a causal TAAE attends to the past only, so the right side must be 0, got "
                             f"{list(self.window)}; use e.g. [{self.window[0]}, 0]")

    @property
    def hop_length(self) -> int:
        return self.patch_size * math.prod(self.strides)

    def block_kwargs(self) -> dict:
        return dict(head_dim=self.head_dim, window=self.window, ffn_mult=self.ffn_mult, norm_eps=self.norm_eps,
                    qk_norm_eps=self.qk_norm_eps, layer_scale_init=self.layer_scale_init,
                    attention_backend=self.attention_backend)

    @classmethod
    def from_dict(cls, values: dict) -> TAAEConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TAAEConfig keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)


class TAAEEncoder(nn.Module):
    def __init__(self, config: TAAEConfig):
        super().__init__()
        c = config
        conv, down, _ = conv_layers(c.causal)
        self.stem = conv(c.patch_size, c.stem_width, kernel_size=7)
        ins = (c.stem_width, *c.widths[:-1])
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Identity() if c.identity_stride1 and s == 1 else down(w_in, w, s),
                          Transformer(w, d, checkpointing=c.checkpointing, **c.block_kwargs()))
            for w_in, w, s, d in zip(ins, c.widths, c.strides, c.depths)
        )
        self.head = conv(c.widths[-1], c.latent_dim, kernel_size=3)

    def forward(self, patches: Tensor) -> Tensor:  # (B, P, N) → (B, D, S)
        x = self.stem(patches)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def layers(self) -> list[tuple[str, nn.Module]]:
        """(name, layer) in the order ``forward`` applies them (the streaming path walks this list)."""
        return _layers(self)


class TAAEDecoder(nn.Module):
    def __init__(self, config: TAAEConfig):
        super().__init__()
        c = config
        depths = c.decoder_depths or c.depths
        conv, _, up = conv_layers(c.causal)
        self.stem = conv(c.latent_dim, c.widths[-1], kernel_size=3)
        outs = (c.stem_width, *c.widths[:-1])
        self.stages = nn.ModuleList(
            nn.Sequential(Transformer(w, d, checkpointing=c.checkpointing, **c.block_kwargs()),
                          nn.Identity() if c.identity_stride1 and s == 1 else up(w, w_out, s))
            for w_out, w, s, d in reversed(list(zip(outs, c.widths, c.strides, depths)))
        )
        if c.head == "overlap_add":
            self.head = OverlapAddHead(c.stem_width, c.patch_size)
        elif c.head == "istft":
            self.head = ISTFTHead(c.stem_width, c.patch_size)
        else:
            self.head = conv(c.stem_width, c.patch_size, kernel_size=7, bias=False)

    def forward(self, codes: Tensor) -> Tensor:  # (B, D, S) → (B, P, N)
        x = self.stem(codes)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def layers(self) -> list[tuple[str, nn.Module]]:
        """(name, layer) in the order ``forward`` applies them (the streaming path walks this list)."""
        return _layers(self)


def _layers(coder: TAAEEncoder | TAAEDecoder) -> list[tuple[str, nn.Module]]:
    stages = [(f"stages.{i}.{j}", layer) for i, stage in enumerate(coder.stages) for j, layer in enumerate(stage)]
    return [("stem", coder.stem), *stages, ("head", coder.head)]


def patch(wav: Tensor, patch_size: int) -> Tensor:
    """(B, 1, T) → (B, P, T/P): channel k holds the k-th sample of every patch (a pure reshape, architecture.md §1)."""
    return rearrange(wav, "b 1 (n p) -> b p n", p=patch_size)


def unpatch(patches: Tensor) -> Tensor:
    """(B, P, N) → (B, 1, N·P), the exact inverse of ``patch`` (always differentiable, §9 item 7)."""
    return rearrange(patches, "b p n -> b 1 (n p)")


class TAAE(ComputeAccounting, nn.Module):
    """The transformer audio autoencoder with an FSQ bottleneck and post-hoc residual FSQ presets."""

    loss_terms: tuple[str, ...] = ()
    """FSQ has no auxiliary loss: ``forward`` returns no terms of its own."""

    def __init__(self, config: TAAEConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = TAAEConfig()
        elif isinstance(config, dict):
            config = TAAEConfig.from_dict(config)
        # A private copy: add_preset records into it, and a config object may be shared by several models.
        config = replace(config, presets=dict(config.presets))
        self.config = config
        self.encoder = TAAEEncoder(config)
        self.decoder = TAAEDecoder(config)
        self.quantizer = FSQ([config.fsq_levels] * config.latent_dim, dither_prob=config.dither_prob,
                             random_levels=config.random_levels)
        # Registered submodules built once: they follow .to() (a preset built per call would stay on the CPU).
        self.residual = ResidualPresets(config.latent_dim, config.presets)

    # -- codec interface -------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def encode_latent(self, wav: Tensor) -> Tensor:
        """(B, 1, T) → bounded latent tanh(z), (B, D, S), S = ⌈T / hop⌉."""
        return torch.tanh(self.encode_unbounded(wav))

    def encode_unbounded(self, wav: Tensor) -> Tensor:
        """(B, 1, T) → the encoder's latent z before tanh, float32 (stable-codec's "pre-bottleneck latents")."""
        self._check_wav(wav)
        wav = pad_to_multiple(wav, self.hop_length)
        return self.encoder(patch(wav, self.config.patch_size)).float()

    def decode_codes(self, codes: Tensor) -> Tensor:
        """(B, D, S) codes in [−1, 1] → (B, 1, S·hop)."""
        wav = unpatch(self.decoder(codes))
        return torch.tanh(wav) if self.config.output_tanh else wav

    def forward(self, wav: Tensor) -> GeneratorOutput:
        length = wav.shape[-1]
        self._check_wav(wav)
        padded = pad_to_multiple(wav, self.hop_length)
        z = self.encoder(patch(padded, self.config.patch_size))
        codes = self.quantizer(z)
        audio = self.decode_codes(codes.to(z.dtype))[..., :length]
        return GeneratorOutput(audio=audio, latent=torch.tanh(z.float()), codes=codes)

    @torch.no_grad()
    def encode(self, wav: Tensor, preset: str | None = None) -> Tensor:
        """(B, 1, T) → tokens (B, K, S) int64; eval quantisation whatever the module's mode."""
        name = self.resolve_preset(preset)
        return self.tokens_from_latent(self.encode_unbounded(wav), name)

    @torch.no_grad()
    def tokens_from_latent(self, z: Tensor, preset: str | None = None) -> Tensor:
        """The encoder's latent before tanh (B, D, S) → tokens (B, K, S) int64: the quantising half of
        :meth:`encode` (the streaming path calls it per chunk)."""
        name = self.resolve_preset(preset)
        if self.config.token_rule == "stable-codec":
            from taae.quantizers.stable_codec_tokens import stable_codec_tokens

            stages = None if name == "native" else self._residual(name).stages
            return stable_codec_tokens(z, stages, self.quantizer.levels)
        bounded = torch.tanh(z)
        if name == "native":
            # codes_to_indices rounds with the quantiser's own rule: the eval path, whatever the module's mode.
            return self.quantizer.codes_to_indices(bounded).unsqueeze(1)
        return self._residual(name).encode(bounded)

    @torch.no_grad()
    def decode(self, tokens: Tensor, preset: str | None = None) -> Tensor:
        """tokens (B, K, S) → (B, 1, S·hop)."""
        return self.decode_codes(self.codes_from_tokens(tokens, preset))

    @torch.no_grad()
    def codes_from_tokens(self, tokens: Tensor, preset: str | None = None) -> Tensor:
        """tokens (B, K, S) → codes (B, D, S) in the decoder's dtype and device: the first half of :meth:`decode`."""
        name = self.resolve_preset(preset)
        if name == "native":
            self.quantizer.token_spec(self.frame_rate).check_tokens(tokens)
            codes = self.quantizer.indices_to_codes(tokens[:, 0])
        else:
            codes = self._residual(name).decode(tokens)  # checks K and every token's range itself
        weight = next(self.decoder.parameters())
        return codes.to(device=weight.device, dtype=weight.dtype)

    def aliases(self) -> dict[str, str]:
        """Short names of this model's built-in presets, ``700bps`` → ``2x15625_700bps`` (token files record the full
        name)."""
        return {alias: name for alias, name in PRESET_ALIASES.items() if self.residual.canonical(name) == name}

    def resolve_preset(self, preset: str | None) -> str:
        """The one place a TAAE preset is decided: ``None``/``native``, a preset name, an alias (``700bps``), or
        stages written as text (``"5x5:1,0.25"``, registered as a user preset on first use). Returns the full name.
        """
        name = "native" if preset is None else str(preset)
        if name == "native":
            return name
        canonical = self.residual.canonical(name)
        if canonical is not None:
            return canonical
        if STAGES_PATTERN.fullmatch(name):
            self.add_preset(name, parse_stages(name))
            return name
        note = "" if self.config.latent_dim == 6 else " (the built-in presets need latent_dim 6)"
        raise ValueError(f"unknown preset {name!r}; known presets: {['native', *self.residual.names()]}, or stages "
                         f"such as '5x5:1,0.25'{note}")

    def presets(self) -> dict[str, TokenSpec]:
        """``native`` (one 17^6 token), the built-in residual presets with their bps aliases, and user presets."""
        specs = {"native": self.quantizer.token_spec(self.frame_rate)}
        for name in self.residual.names():
            specs[name] = self.residual[name].token_spec(self.frame_rate, name)
        return specs

    def add_preset(self, name: str, stages, allow_lossy: bool = False) -> TokenSpec:
        """Register user stages ``[(levels, scale), …]`` under ``name`` (no retraining needed, §4).

        The preset is built on the model's device and recorded in ``config.presets``.
        """
        preset = ResidualPreset(stages, allow_lossy)
        stack = self.residual.add(name, preset, device=self.quantizer._levels.device)
        self.config.presets[name] = preset
        return stack.token_spec(self.frame_rate, name)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def flop_count(self, num_samples: int | None = None) -> FlopCount:
        """Forward FLOPs per second of audio (None) or of one item of ``num_samples`` (``taae.models.flops``)."""
        return taae_flops(self.config, num_samples)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _residual(self, preset: str) -> PostHocResidualFSQ:
        return self.residual[self.resolve_preset(preset)]

    @staticmethod
    def _check_wav(wav: Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected a mono waveform of shape (B, 1, T), got {tuple(wav.shape)}")
        if wav.shape[-1] == 0:
            raise ValueError("expected at least one sample, got T = 0")
