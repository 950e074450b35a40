"""The ``onnx/`` folder an export carries: its ``onnx.json`` (format, versions, the weights' hash, rates) and the
ONNX Runtime sessions over its graphs. The TAAE trunks (:mod:`taae.codec.onnx_runtime`), the RVQGAN
(:mod:`taae.codec.onnx_rvqgan`) and the causal streaming steps (:mod:`taae.codec.onnx_streaming`) share it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from torch import nn
from torch.nn.utils import parametrize

from taae import __version__
from taae.io.atomic import write_text

ONNX_FORMAT = "taae-onnx"
ONNX_VERSION = 1
META_NAME = "onnx.json"


def write_meta(model: nn.Module, model_hash: str, folder: Path, extra: dict) -> None:
    """Write ``onnx.json`` for ``model``'s graphs in ``folder`` (``extra``: what each kind adds)."""
    meta = {"format": ONNX_FORMAT, "version": ONNX_VERSION, "taae_version": __version__, "model_hash": model_hash,
            "sample_rate": int(model.sample_rate), "hop_length": int(model.hop_length),
            "latent_dim": int(model.config.latent_dim), **extra}
    write_text(folder / META_NAME, json.dumps(meta, indent=2) + "\n")


def read_meta(model_hash: str, folder: str | Path) -> dict:
    """``folder``'s ``onnx.json``, refused in one line unless it is this format version, this taae version and the
    weights hashing to ``model_hash``: the graphs bake in the model code of the taae that exported them."""
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
    if meta.get("taae_version") != __version__:
        raise ValueError(f"{meta_path} was exported by taae {meta.get('taae_version')} but this is taae "
                         f"{__version__}, whose model code may differ; export it again with `taae export --onnx`")
    return meta


def open_session(path: Path, providers: list[str] | None = None, threads: int | None = None):
    """An ONNX Runtime session on ``path`` with ``threads`` intra-op threads (None: onnxruntime's default, one per
    physical core); a missing file is one line naming it."""
    import onnxruntime as ort

    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} is not a complete taae ONNX export: {path.name} is missing")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


def plain_copy(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` in eval mode for the exporters, its weight norms baked into plain weights.

    ``g·v/‖v‖`` becomes the weight it evaluates to (the value ``parametrize.cached`` would compute), so the graph
    holds one constant per conv instead of the norm. Tracing under ``parametrize.cached`` instead fills the cache
    with the tracer's fake tensors on first use, and the exporter then fails to write those weights. Not
    ``parametrize.remove_parametrizations``: a deep copy shares the generated ``Parametrized*`` class with the model,
    and that function deletes the property from the class, which breaks the model itself.
    """
    plain = copy.deepcopy(model).cpu().eval()
    for module in [m for m in plain.modules() if parametrize.is_parametrized(m)]:
        values = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
        module.__class__ = module.__class__.__bases__[0]  # the class torch subclassed to parametrize it
        del module.parametrizations
        for name, value in values.items():
            module.register_parameter(name, nn.Parameter(value, requires_grad=False))
    return plain
