"""The codec interface as code: what ``CodecModule``, ``Codec`` and ``evaluate.py`` need from a codec model.

Shape legend: B batch, T samples, K tokens per frame (stages or codebooks), S latent frames.

``TAAE`` and ``RVQGAN`` implement :class:`CodecModel`; ``TAAE`` also implements :class:`SupportsUserPresets`.
Both protocols are ``runtime_checkable``, so callers check a model with ``isinstance`` (which tests that every
member is present; signatures are checked by the type checker and by ``tests/models/test_interface.py``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from taae.models.base import GeneratorOutput
from taae.quantizers.token_spec import TokenSpec

__all__ = ["CodecModel", "SupportsUserPresets", "check_codec_model", "protocol_members"]


@runtime_checkable
class CodecModel(Protocol):
    """A codec model: an ``nn.Module`` with a training path, an inference path and named token layouts."""

    config: Any
    """The dataclass the model is built from; checkpoints and exports store it to rebuild the model."""
    loss_terms: tuple[str, ...]
    """Names of the auxiliary losses ``forward`` returns (``vq/commitment``); training refuses weights for others."""

    @property
    def sample_rate(self) -> int:
        """Input and output rate in Hz."""
        ...

    @property
    def hop_length(self) -> int:
        """Samples per latent frame."""
        ...

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (``sample_rate / hop_length``)."""
        ...

    def forward(self, wav: Tensor) -> GeneratorOutput:
        """Training path, (B, 1, T) → ``GeneratorOutput`` whose ``audio`` has exactly T samples."""
        ...

    def encode(self, wav: Tensor, preset: str | None = None) -> Tensor:
        """(B, 1, T) → (B, K, S) int64 tokens, eval quantisation whatever the module's mode."""
        ...

    def decode(self, tokens: Tensor, preset: str | None = None) -> Tensor:
        """(B, K, S) tokens → (B, 1, S·hop); every token is checked against its vocabulary."""
        ...

    def presets(self) -> dict[str, TokenSpec]:
        """Every token layout the model emits, by name; ``native`` always exists."""
        ...

    def aliases(self) -> dict[str, str]:
        """Short names → full preset names (``700bps`` → ``2x15625_700bps``); empty when the names are the presets."""
        ...

    def resolve_preset(self, preset: str | None) -> str:
        """The model's full preset name for ``preset`` (None: ``native``): the one place its names are decided."""
        ...

    def num_parameters(self) -> int:
        ...


@runtime_checkable
class SupportsUserPresets(Protocol):
    """A codec model that takes new post-hoc residual FSQ presets without retraining (TAAE)."""

    def add_preset(self, name: str, stages: Any, allow_lossy: bool = False) -> TokenSpec:
        """Register stages ``[(levels, scale), …]`` under ``name``; returns the preset's token layout."""
        ...


def protocol_members(protocol: type) -> list[str]:
    """The public members a protocol declares: its annotated attributes, properties and methods."""
    names = [*getattr(protocol, "__annotations__", {}), *vars(protocol)]
    return list(dict.fromkeys(n for n in names if not n.startswith("_")))


def check_codec_model(model: object, where: str) -> None:
    """Raise ``TypeError`` naming ``where`` and the missing members unless ``model`` is a :class:`CodecModel`."""
    if isinstance(model, CodecModel):
        return
    missing = [name for name in protocol_members(CodecModel) if not hasattr(model, name)]
    raise TypeError(f"{where}: {type(model).__name__} is not a codec model (taae.models.interface.CodecModel); "
                    f"it lacks {missing}")
