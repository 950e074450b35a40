"""ONNX export of a TAAE's encoder and decoder, and an ONNX Runtime runner for :class:`taae.codec.Codec`.

Shape legend: B batch, T samples (a whole number of hops), D latent dim, S latent frames, K tokens per frame.

    encoder.onnx   wav (B, 1, T) ─patch → encoder─► z (B, D, S), the latent before tanh
    decoder.onnx   codes (B, D, S) ─decoder → unpatch (→ tanh)─► wav (B, 1, S·hop)
    onnx.json      format, version, taae version, the model's hash, rates: checked against the codec that loads it

A causal TAAE also gets its streaming step with the state as explicit inputs and outputs (``encoder_step.onnx``,
``decoder_step.onnx``: :mod:`taae.codec.onnx_streaming`), and an RVQGAN gets its encoder and decoder trunks
(:mod:`taae.codec.onnx_rvqgan`).

Only the transformer trunks run in ONNX Runtime; pre-processing, padding, chunking and the token math (tanh, FSQ
and the residual presets, user presets included) stay the PyTorch code that the eager path runs, so both runtimes
share one implementation of everything but the matrix work. T and S are dynamic. Attention is exported through the
``naive`` backend (a band mask over dense scores: every backend computes the same function, and it is the one that
traces without data-dependent branches), which costs N² memory per layer: Codec's chunking bounds N.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from taae.codec.onnx_files import (
    META_NAME,
    ONNX_FORMAT,
    ONNX_VERSION,
    open_session,
    plain_copy,
    read_meta,
    write_meta,
)

__all__ = ["ONNX_FORMAT", "ONNX_VERSION", "OnnxRunner", "export_onnx", "open_runner"]

PARTS = ("encoder", "decoder")


class _Encoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, wav: Tensor) -> Tensor:  # (B, 1, T) → (B, D, S)
        from taae.models.taae import patch

        return self.model.encoder(patch(wav, self.model.config.patch_size)).float()


class _Decoder(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, codes: Tensor) -> Tensor:  # (B, D, S) → (B, 1, S·hop)
        return self.model.decode_codes(codes)


def _check_model(model: nn.Module) -> None:
    if not all(hasattr(model, n) for n in ("encoder", "decode_codes", "tokens_from_latent", "codes_from_tokens")):
        raise ValueError(f"ONNX export supports TAAE models only, got {type(model).__name__}")


def export_onnx(model: nn.Module, model_hash: str, folder: str | Path) -> Path:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``onnx.json`` for ``model`` (a TAAE or an RVQGAN) into
    ``folder``; for a causal TAAE also its streaming step (``encoder_step.onnx``, ``decoder_step.onnx``)."""
    from taae.codec.onnx_rvqgan import export_rvqgan, is_rvqgan

    if is_rvqgan(model):
        folder = export_rvqgan(model, Path(folder))
        write_meta(model, model_hash, folder, {"model": "RVQGAN"})
        return folder
    _check_model(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    traced = plain_copy(model)
    for module in traced.modules():
        if hasattr(module, "backend") and hasattr(module, "window"):
            module.backend = "naive"  # traces without data-dependent branches (module docstring)
    frames = torch.export.Dim("frames", min=1, max=1 << 20)  # not "N": sympy reads that name as a function
    batch = torch.export.Dim("batch", max=4096)
    wav = torch.zeros(1, 1, 16 * traced.hop_length)
    codes = torch.zeros(1, traced.config.latent_dim, 16)
    with torch.no_grad():
        torch.onnx.export(_Encoder(traced).eval(), (wav,), str(folder / "encoder.onnx"), dynamo=True,
                          input_names=["wav"], output_names=["latent"],
                          dynamic_shapes={"wav": {0: batch, 2: traced.hop_length * frames}})
        torch.onnx.export(_Decoder(traced).eval(), (codes,), str(folder / "decoder.onnx"), dynamo=True,
                          input_names=["codes"], output_names=["wav"],
                          dynamic_shapes={"codes": {0: batch, 2: frames}})
    extra = {"model": "TAAE"}
    if getattr(traced.config, "causal", False):
        from taae.codec.onnx_streaming import export_steps

        extra["streaming"] = export_steps(traced, folder)  # state leaves per side
    write_meta(model, model_hash, folder, extra)
    return folder


def open_runner(model: nn.Module, model_hash: str, folder: str | Path, providers: list[str] | None = None,
                threads: int | None = None):
    """The runner for ``model``'s kind: :class:`OnnxRunner` (TAAE) or
    :class:`taae.codec.onnx_rvqgan.RVQGANOnnxRunner`."""
    from taae.codec.onnx_rvqgan import RVQGANOnnxRunner, is_rvqgan

    if is_rvqgan(model):
        return RVQGANOnnxRunner(model, model_hash, folder, providers, threads)
    return OnnxRunner(model, model_hash, folder, providers, threads)


class OnnxRunner:
    """What :class:`taae.codec.Codec` calls (``encode``/``decode``/``encode_unbounded``/``tokens_from_latent``), with
    the trunks in ONNX Runtime and the token math from ``model``. Refuses a folder exported from another model or
    another format version, in one line."""

    def __init__(self, model: nn.Module, model_hash: str, folder: str | Path, providers: list[str] | None = None,
                 threads: int | None = None):
        _check_model(model)
        folder = Path(folder)
        self.meta = read_meta(model_hash, folder)
        self.model = model
        self.folder, self.providers, self.threads = folder, providers, threads
        self.sessions = {part: open_session(folder / f"{part}.onnx", providers, threads) for part in PARTS}

    def streaming(self, batch_size: int = 1, preset: str | None = None):
        """A :class:`taae.codec.onnx_streaming.OnnxStreamingSession` over this folder's streaming step (causal
        models)."""
        from taae.codec.onnx_streaming import OnnxStreamingSession, step_file
        from taae.codec.streaming import SIDES, _layers

        _layers(self.model, "encoder")  # a non-causal model is refused as the torch runtime refuses it
        if "streaming" not in self.meta:
            raise ValueError(f"{self.folder / META_NAME} has no streaming step (exported by a taae without it); "
                             "export it again with `taae export --onnx`")
        if "steps" not in self.__dict__:
            self.steps = {side: open_session(self.folder / step_file(side), self.providers, self.threads)
                          for side in SIDES}
        return OnnxStreamingSession(self.model, self.steps, batch_size, preset)

    def __getattr__(self, name):  # presets, add_preset, rates: the model's
        return getattr(self.__dict__["model"], name)

    def _run(self, part: str, x: Tensor) -> Tensor:
        name = self.sessions[part].get_inputs()[0].name
        out = self.sessions[part].run(None, {name: x.detach().to("cpu", torch.float32).contiguous().numpy()})[0]
        return torch.from_numpy(out).to(x.device)

    def encode_unbounded(self, wav: Tensor) -> Tensor:  # (B, 1, T), T a whole number of hops → (B, D, S)
        return self._run("encoder", wav)

    def tokens_from_latent(self, z: Tensor, preset: str | None = None) -> Tensor:
        return self.model.tokens_from_latent(z, preset)

    def encode(self, wav: Tensor, preset: str | None = None) -> Tensor:
        return self.model.tokens_from_latent(self.encode_unbounded(wav), preset)

    def decode(self, tokens: Tensor, preset: str | None = None) -> Tensor:
        return self._run("decoder", self.model.codes_from_tokens(tokens, preset))
