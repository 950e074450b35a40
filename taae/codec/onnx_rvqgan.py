"""ONNX export of the RVQGAN baseline's encoder and decoder, and its ONNX Runtime runner for
:class:`taae.codec.Codec`.

Shape legend: B batch, T samples (a whole number of hops), D latent dim, S latent frames, K codebooks.

    encoder.onnx   wav (B, 1, T) ─convolutional encoder─► z_e (B, D, S), before the residual VQ
    decoder.onnx   z_q (B, D, S) ─convolutional decoder─► wav (B, 1, S·hop)

As for the TAAE (:mod:`taae.codec.onnx_runtime`), only the trunks run in ONNX Runtime: the residual VQ's
nearest-codebook
search and the codebook sums stay the PyTorch code of :meth:`taae.models.rvqgan.RVQGAN.quantize_latent` and
:meth:`~taae.models.rvqgan.RVQGAN.latent_from_tokens`, so both runtimes share the token math. The runner has no
``tokens_from_latent``: a nearest-codebook search is not monotone, so :mod:`taae.codec.batching` encodes RVQGAN items
one
at a time, as with the torch runtime.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from taae.codec.onnx_files import open_session, plain_copy, read_meta
from taae.models.base import pad_to_multiple

__all__ = ["RVQGANOnnxRunner", "export_rvqgan", "is_rvqgan"]

PARTS = ("encoder", "decoder")


def is_rvqgan(model: nn.Module) -> bool:
    """Whether ``model`` is an RVQGAN (encoder, residual VQ, decoder with the token halves split out)."""
    return all(hasattr(model, n) for n in ("encoder", "quantizer", "decoder", "quantize_latent", "latent_from_tokens"))


def export_rvqgan(model: nn.Module, folder: Path) -> Path:
    """Write ``encoder.onnx`` and ``decoder.onnx`` of an RVQGAN into ``folder`` (batch and length dynamic)."""
    folder.mkdir(parents=True, exist_ok=True)
    traced = plain_copy(model)
    batch = torch.export.Dim("batch", max=4096)
    frames = torch.export.Dim("frames", min=1, max=1 << 20)
    wav = torch.zeros(1, 1, 16 * traced.hop_length)
    latent = torch.zeros(1, traced.config.latent_dim, 16)
    with torch.no_grad():
        torch.onnx.export(traced.encoder, (wav,), str(folder / "encoder.onnx"), dynamo=True, input_names=["wav"],
                          output_names=["latent"],
                          dynamic_shapes={"wav": {0: batch, 2: traced.hop_length * frames}})
        torch.onnx.export(traced.decoder, (latent,), str(folder / "decoder.onnx"), dynamo=True,
                          input_names=["latent"], output_names=["wav"], dynamic_shapes={"z": {0: batch, 2: frames}})
    return folder


class RVQGANOnnxRunner:
    """What :class:`taae.codec.Codec` calls (``encode``/``decode``) for an RVQGAN, with the encoder and decoder in
    ONNX Runtime and the residual VQ from ``model``; the folder is checked as in
    :func:`taae.codec.onnx_files.read_meta`.
    """

    def __init__(self, model: nn.Module, model_hash: str, folder: str | Path, providers: list[str] | None = None,
                 threads: int | None = None):
        folder = Path(folder)
        self.meta = read_meta(model_hash, folder)
        if self.meta.get("model", "TAAE") != "RVQGAN":
            raise ValueError(f"{folder} holds a {self.meta.get('model', 'TAAE')} export, not an RVQGAN's")
        self.model = model
        self.sessions = {part: open_session(folder / f"{part}.onnx", providers, threads) for part in PARTS}

    def __getattr__(self, name):  # presets, rates: the model's
        return getattr(self.__dict__["model"], name)

    def _run(self, part: str, x: Tensor) -> Tensor:
        name = self.sessions[part].get_inputs()[0].name
        out = self.sessions[part].run(None, {name: x.detach().to("cpu", torch.float32).contiguous().numpy()})[0]
        return torch.from_numpy(out).to(x.device)

    def encode(self, wav: Tensor, preset: str | None = None) -> Tensor:  # (B, 1, T) → (B, K, S) int64
        self.model._check_wav(wav)
        return self.model.quantize_latent(self._run("encoder", pad_to_multiple(wav, self.model.hop_length)), preset)

    def decode(self, tokens: Tensor, preset: str | None = None) -> Tensor:  # (B, K, S) → (B, 1, S·hop)
        return self._run("decoder", self.model.latent_from_tokens(tokens, preset))
