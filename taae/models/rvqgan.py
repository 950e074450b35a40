"""DAC-style convolutional RVQGAN codec (Improved RVQGAN, Kumar et al. 2023, arXiv 2306.06546), the baseline.

Shape legend: B batch, C channels, T samples, D latent dim, S latent frames, K codebooks.

Follows descript-audio-codec 1.0.0 (``dac/model/dac.py``; see §7) with two deliberate
differences, neither of which adds or removes parameters (released weights still map one to one):
- decoder transposed convs use ``output_padding = stride % 2`` (§7), so odd strides (the 16 kHz model's 5)
  return exactly hop × frames samples instead of 8 samples short;
- ``encode`` never applies quantizer dropout, even in train mode (DAC needs ``model.eval()``, issue #40).
Weight norm is torch's parametrization (keys ``parametrizations.weight.original0/1``, not ``weight_g/weight_v``).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from taae.models.base import GeneratorOutput, count_parameters, pad_to_multiple
from taae.models.flops import ComputeAccounting, FlopCount, rvqgan_flops
from taae.nn.conv import DownsampleConv, ResidualUnit, Snake1d, UpsampleConv, WNConv1d
from taae.quantizers.rvq import ResidualVectorQuantizer
from taae.quantizers.token_spec import TokenSpec

DILATIONS = (1, 3, 9)  # §7: every encoder/decoder block holds three residual units


class EncoderBlock(nn.Module):
    """Three residual units at ``in_channels`` → Snake → strided conv (k=2s) to ``out_channels`` (§7)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            *(ResidualUnit(in_channels, dilation=d) for d in DILATIONS),
            Snake1d(in_channels),
            DownsampleConv(in_channels, out_channels, stride),
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L) -> (B, 2C, L / s)
        return self.block(x)


class Encoder(nn.Module):
    """Stem conv k7 → a block per stride (channels double) → Snake → conv k3 to ``latent_dim`` (§7)."""

    def __init__(self, dim: int, strides: tuple[int, ...], latent_dim: int):
        super().__init__()
        layers: list[nn.Module] = [WNConv1d(1, dim, kernel_size=7, padding=3)]
        for stride in strides:
            layers.append(EncoderBlock(dim, 2 * dim, stride))
            dim *= 2
        layers += [Snake1d(dim), WNConv1d(dim, latent_dim, kernel_size=3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, wav: Tensor) -> Tensor:  # (B, 1, T) -> (B, D, T / hop)
        return self.block(wav)


class DecoderBlock(nn.Module):
    """Snake → transposed conv (k=2s, output_padding s % 2) → three residual units (§7 fix)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, exact_length: bool = True):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(in_channels),
            UpsampleConv(in_channels, out_channels, stride, exact_length),
            *(ResidualUnit(out_channels, dilation=d) for d in DILATIONS),
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L) -> (B, C / 2, s·L)
        return self.block(x)


class Decoder(nn.Module):
    """Conv k7 to ``dim`` → a block per stride (channels halve) → Snake → conv k7 to 1 → tanh (§7)."""

    def __init__(self, latent_dim: int, dim: int, strides: tuple[int, ...], exact_length: bool = True):
        super().__init__()
        self.hop_length = math.prod(strides)
        layers: list[nn.Module] = [WNConv1d(latent_dim, dim, kernel_size=7, padding=3)]
        for stride in strides:
            layers.append(DecoderBlock(dim, dim // 2, stride, exact_length))
            dim //= 2
        layers += [Snake1d(dim), WNConv1d(dim, 1, kernel_size=7, padding=3), nn.Tanh()]
        self.block = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:  # (B, D, S) -> (B, 1, S·hop)
        wav = self.block(z)
        # Only with exact_length=False (DAC's rule) is the output short: zeros restore S·hop, DAC's samples first.
        return F.pad(wav, (0, z.shape[-1] * self.hop_length - wav.shape[-1]))


@dataclass
class RVQGANConfig:
    """Hyper-parameters of the RVQGAN codec.

    Defaults: DAC's released 16 kHz model (§7; descript-audio-codec conf/final/16khz.yml).
    """

    sample_rate: int = 16000
    """Audio sample rate in Hz (§7: 16 kHz variant)."""
    encoder_dim: int = 64
    """Width of the encoder stem; every encoder block doubles it (§7: d_model 64)."""
    encoder_strides: tuple[int, ...] = (2, 4, 5, 8)
    """Downsampling factor of each encoder block (§7: [2, 4, 5, 8] at 16 kHz)."""
    hop_length: int = 320
    """Samples per latent frame; must equal the product of ``encoder_strides`` (§7: 320 → 50 Hz)."""
    latent_dim: int | None = None
    """Encoder output width D; None derives encoder_dim · 2^len(encoder_strides) (§7: 1024)."""
    decoder_dim: int = 1536
    """Width after the decoder stem; every decoder block halves it (§7: 1536)."""
    decoder_strides: tuple[int, ...] = (8, 5, 4, 2)
    """Upsampling factor of each decoder block; the product must equal ``hop_length`` (§7: [8, 5, 4, 2])."""
    n_codebooks: int = 12
    """Residual VQ stages K (§7: 12 at 16 kHz → 6 kbps at 50 Hz)."""
    codebook_size: int = 1024
    """Entries per codebook (§7: 1024, 10 bits)."""
    codebook_dim: int = 8
    """Factorised lookup width E of every stage (§7: 8)."""
    quantizer_dropout: float = 0.5
    """Fraction p of each training batch given a random codebook count (§7: 0.5 in released configs)."""
    exact_length: bool = True
    """Transposed convs with ``output_padding = stride % 2``, so decode gives exactly S·hop samples (ours). False
    keeps DAC 1.0.0's rule (8 samples short at 16 kHz, zero-padded back), as its released weights expect."""

    def __post_init__(self) -> None:
        # YAML and plain dicts give lists; keep the dataclass hashable-looking and comparable.
        self.encoder_strides = tuple(int(s) for s in self.encoder_strides)
        self.decoder_strides = tuple(int(s) for s in self.decoder_strides)
        for key in ("sample_rate", "encoder_dim", "hop_length", "decoder_dim", "n_codebooks", "codebook_size",
                    "codebook_dim"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("encoder_strides", "decoder_strides"):
            strides = getattr(self, key)
            if not strides or any(s < 1 for s in strides):
                raise ValueError(f"{key} must be a non-empty list of positive integers, got {list(strides)}")
        if math.prod(self.encoder_strides) != self.hop_length:
            raise ValueError(f"encoder_strides {list(self.encoder_strides)} multiply to "
                             f"{math.prod(self.encoder_strides)}, but hop_length is {self.hop_length}")
        if math.prod(self.decoder_strides) != self.hop_length:
            raise ValueError(f"decoder_strides {list(self.decoder_strides)} multiply to "
                             f"{math.prod(self.decoder_strides)}, but the encoder's hop_length is {self.hop_length}")
        if self.decoder_dim % 2 ** len(self.decoder_strides):
            raise ValueError(f"decoder_dim {self.decoder_dim} must be divisible by 2^{len(self.decoder_strides)} "
                             f"(one halving per decoder stride)")
        if self.latent_dim is None:
            self.latent_dim = self.encoder_dim * 2 ** len(self.encoder_strides)
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {self.latent_dim}")
        if not 0.0 <= self.quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {self.quantizer_dropout}")


def _dac_init(module: nn.Module) -> None:
    """What DAC's ``init_weights`` actually does (§7): zero the bias of every ``nn.Conv1d``.

    DAC also draws a truncated normal (std 0.02) into ``.weight``, but under weight norm ``.weight`` is recomputed
    from (g, v) on every forward, so that draw never takes effect and the weights keep PyTorch's default
    kaiming-uniform init. We skip the dead draw and keep the measured behaviour. ``ConvTranspose1d`` is not an
    ``nn.Conv1d`` subclass, so transposed convs keep their default bias, as in DAC.
    """
    if isinstance(module, nn.Conv1d) and module.bias is not None:
        nn.init.zeros_(module.bias)


class RVQGAN(ComputeAccounting, nn.Module):
    """Encoder → factorised residual VQ → decoder, implementing the codec interface of ``taae.models.base``.

    Args:
        config: an ``RVQGANConfig`` (LightningCLI builds it from ``init_args: {config: {...}}``) or a plain dict of
            its fields.
    """

    loss_terms = ("vq/commitment", "vq/codebook")
    """The terms ``forward`` puts in ``GeneratorOutput.losses`` (DAC's VQ losses, §7)."""

    def __init__(self, config: RVQGANConfig):
        super().__init__()
        if isinstance(config, dict):
            config = RVQGANConfig(**config)
        if not isinstance(config, RVQGANConfig):
            raise TypeError(f"config must be an RVQGANConfig or a dict, got {type(config).__name__}")
        self.config = config
        self.sample_rate = config.sample_rate
        self.hop_length = config.hop_length
        self.frame_rate = config.sample_rate / config.hop_length
        self.encoder = Encoder(config.encoder_dim, config.encoder_strides, config.latent_dim)
        self.quantizer = ResidualVectorQuantizer(config.latent_dim, config.n_codebooks, config.codebook_size,
                                                 config.codebook_dim, config.quantizer_dropout)
        self.decoder = Decoder(config.latent_dim, config.decoder_dim, config.decoder_strides, config.exact_length)
        self.apply(_dac_init)
        self._presets = self._build_presets()

    # ------------------------------------------------------------------ presets
    def _build_presets(self) -> dict[str, TokenSpec]:
        """``native`` (all K), ``{k}q`` (first k codebooks) and ``{bps}bps`` aliases for whole-number bitrates."""
        size, n = self.config.codebook_size, self.config.n_codebooks

        def spec(name: str, k: int) -> TokenSpec:
            return TokenSpec(name=name, vocab_sizes=(size,) * k, frame_rate=self.frame_rate)

        presets = {"native": spec("native", n)}
        presets.update({f"{k}q": spec(f"{k}q", k) for k in range(1, n + 1)})
        for k in range(1, n + 1):
            bitrate = presets[f"{k}q"].bitrate
            name = f"{round(bitrate)}bps"
            if float(bitrate).is_integer() and name not in presets:
                presets[name] = spec(name, k)
        return presets

    def presets(self) -> dict[str, TokenSpec]:
        return dict(self._presets)

    def aliases(self) -> dict[str, str]:
        """None: the ``{bps}bps`` names are presets of their own (a token file records the name it was asked for)."""
        return {}

    def resolve_preset(self, preset: str | None) -> str:
        """The one place an RVQGAN preset is decided: ``None``/``native``, ``{k}q`` or ``{bps}bps``."""
        name = "native" if preset is None else str(preset)
        if name not in self._presets:
            raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(self._presets)} (an RVQGAN takes "
                             "no stages)")
        return name

    def _preset(self, preset: str | None) -> TokenSpec:
        return self._presets[self.resolve_preset(preset)]

    def num_parameters(self) -> int:
        return count_parameters(self)

    def flop_count(self, num_samples: int | None = None) -> FlopCount:
        """Forward FLOPs per second of audio (None) or of one item of ``num_samples`` (``taae.models.flops``)."""
        return rvqgan_flops(self.config, num_samples, num_residual_units=len(DILATIONS))

    # ------------------------------------------------------------------ codec interface
    def _check_wav(self, wav: Tensor) -> None:
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected mono audio of shape (B, 1, T), got {tuple(wav.shape)}")

    def forward(self, wav: Tensor, n_quantizers: int | None = None) -> GeneratorOutput:
        """Training path: (B, 1, T) → reconstruction of exactly T samples.

        Quantizer dropout is active in train mode unless ``n_quantizers`` fixes the codebook count.
        """
        self._check_wav(wav)
        length = wav.shape[-1]
        z_e = self.encoder(pad_to_multiple(wav, self.hop_length))  # (B, D, S)
        q = self.quantizer(z_e, n_quantizers=n_quantizers)
        audio = self.decoder(q.z_q)[..., :length]  # (B, 1, T)
        return GeneratorOutput(
            audio=audio,
            latent=z_e,
            codes=q.z_q,
            losses={"vq/commitment": q.commitment_loss, "vq/codebook": q.codebook_loss},
        )

    def encode(self, wav: Tensor, preset: str | None = None) -> Tensor:
        """(B, 1, T) → (B, K, S) int64 tokens of ``preset`` (default ``native``); never applies dropout."""
        self._check_wav(wav)
        return self.quantize_latent(self.encoder(pad_to_multiple(wav, self.hop_length)), preset)

    def quantize_latent(self, z_e: Tensor, preset: str | None = None) -> Tensor:
        """The token half of :meth:`encode`: (B, D, S) encoder output → (B, K, S) int64 tokens of ``preset``
        (the ONNX runtime runs the encoder and calls this, :mod:`taae.codec.onnx_rvqgan`)."""
        k = self._preset(preset).tokens_per_frame
        return self.quantizer(z_e, n_quantizers=k).codes[:, :k]  # train mode runs (and returns) every stage

    def decode(self, tokens: Tensor, preset: str | None = None) -> Tensor:
        """(B, K, S) tokens of ``preset`` (default ``native``) → (B, 1, S·hop) audio from the first K codebooks."""
        return self.decoder(self.latent_from_tokens(tokens, preset))

    def latent_from_tokens(self, tokens: Tensor, preset: str | None = None) -> Tensor:
        """The token half of :meth:`decode`: (B, K, S) tokens, checked against ``preset`` → (B, D, S) the
        decoder's input (the sum of the first K codebooks' projections)."""
        spec = self._preset(preset)
        if tokens.dim() != 3 or tokens.shape[1] != spec.tokens_per_frame:
            raise ValueError(f"preset {spec.name!r} expects K={spec.tokens_per_frame} token rows (B, K, S), "
                             f"got shape {tuple(tokens.shape)}")
        spec.check_tokens(tokens)
        return self.quantizer.from_codes(tokens)
