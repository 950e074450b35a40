"""ONNX export of a TAAE's encoder and decoder, and an ONNX Runtime runner for :class:`taae.codec.Codec`.

Shape legend: B batch, T samples (a whole number of hops), D latent dim, S latent frames, K tokens per frame.

    encoder.onnx   wav (B, 1, T) ─patch → encoder─► z (B, D, S), the latent before tanh
    decoder.onnx   codes (B, D, S) ─decoder → unpatch (→ tanh)─► wav (B, 1, S·hop)
    onnx.json      format, version, the model's hash, rates: checked against the codec that loads the folder

Only the transformer trunks run in ONNX Runtime; pre-processing, padding, chunking and the token math (tanh, FSQ
and the residual presets, user presets included) stay the PyTorch code that the eager path runs, so both runtimes
share one implementation of everything but the matrix work. T and S are dynamic. Attention is exported through the
``naive`` backend (a band mask over dense scores: every backend computes the same function, and it is the one that
traces without data-dependent branches), which costs N² memory per layer: Codec's chunking bounds N.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from taae import __version__
from taae.atomic import write_text

__all__ = ["ONNX_FORMAT", "ONNX_VERSION", "OnnxRunner", "export_onnx"]

ONNX_FORMAT = "taae-onnx"
ONNX_VERSION = 1
META_NAME = "onnx.json"
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
    head = getattr(getattr(model, "config", None), "head", "patch")
    if head == "istft":  # torch.export fails inside torch.istft (complex spectra), measured with torch 2.14
        raise ValueError("ONNX export: a TAAE with config head 'istft' (configs/taae/tiny.yaml) cannot be exported to "
                         "ONNX (torch.istft does not trace); export without --onnx, or train with head 'patch'")


def export_onnx(model: nn.Module, model_hash: str, folder: str | Path) -> Path:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``onnx.json`` for ``model`` (a TAAE) into ``folder``."""
    _check_model(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    traced = copy.deepcopy(model).cpu().eval()
    for module in traced.modules():
        if hasattr(module, "backend") and hasattr(module, "window"):
            module.backend = "naive"  # traces without data-dependent branches (module docstring)
    frames = torch.export.Dim("frames", min=1, max=1 << 20)  # not "N": sympy reads that name as a function
    wav = torch.zeros(1, 1, 16 * traced.hop_length)
    codes = torch.zeros(1, traced.config.latent_dim, 16)
    with torch.no_grad(), torch.nn.utils.parametrize.cached():
        torch.onnx.export(_Encoder(traced), (wav,), str(folder / "encoder.onnx"), dynamo=True, input_names=["wav"],
                          output_names=["latent"], dynamic_shapes={"wav": {0: torch.export.Dim("batch", max=4096),
                                                                           2: traced.hop_length * frames}})
        torch.onnx.export(_Decoder(traced), (codes,), str(folder / "decoder.onnx"), dynamo=True,
                          input_names=["codes"], output_names=["wav"],
                          dynamic_shapes={"codes": {0: torch.export.Dim("batch", max=4096), 2: frames}})
    meta = {"format": ONNX_FORMAT, "version": ONNX_VERSION, "taae_version": __version__, "model_hash": model_hash,
            "sample_rate": int(model.sample_rate), "hop_length": int(model.hop_length),
            "latent_dim": int(model.config.latent_dim)}
    write_text(folder / META_NAME, json.dumps(meta, indent=2) + "\n")
    return folder


class OnnxRunner:
    """What :class:`taae.codec.Codec` calls (``encode``/``decode``/``encode_unbounded``/``tokens_from_latent``), with
    the trunks in ONNX Runtime and the token math from ``model``. Refuses a folder exported from another model or
    another format version, in one line."""

    def __init__(self, model: nn.Module, model_hash: str, folder: str | Path, providers: list[str] | None = None):
        import onnxruntime as ort

        _check_model(model)
        folder = Path(folder)
        meta_path = folder / META_NAME
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} is not a taae ONNX export: {META_NAME} is missing "
                                    "(write one with `taae export --onnx`)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{meta_path} is not valid JSON: {err}") from err
        if not isinstance(meta, dict) or meta.get("format") != ONNX_FORMAT or meta.get("version") != ONNX_VERSION:
            got = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else meta
            raise ValueError(f"{meta_path}: format/version {got} is not {ONNX_FORMAT!r} version {ONNX_VERSION} "
                             f"(this taae is {__version__}); export it again with `taae export --onnx`")
        if meta.get("model_hash") != model_hash:
            raise ValueError(f"{meta_path} was exported from model {meta.get('model_hash')} but this codec's model is "
                             f"{model_hash}; export the ONNX files from the same weights")
        self.model = model
        self.sessions = {}
        for part in PARTS:
            path = folder / f"{part}.onnx"
            if not path.is_file():
                raise FileNotFoundError(f"{folder} is not a complete taae ONNX export: {path.name} is missing")
            self.sessions[part] = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])

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
