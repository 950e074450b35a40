"""The runtime around a trained codec: :class:`Codec` and what it runs on.

- :mod:`taae.codec.codec`: :class:`Codec`, load / encode / decode / export (the inference API);
- :mod:`taae.codec.inference`, :mod:`taae.codec.threads`: inference options and CPU thread counts;
- :mod:`taae.codec.chunking`, :mod:`taae.codec.batching`: long inputs in chunks, variable-length batches;
- :mod:`taae.codec.streaming`, :mod:`taae.codec.stream_file`: the causal streaming session and ``taae stream``;
- :mod:`taae.codec.onnx_runtime` (with ``onnx_files``, ``onnx_rvqgan``, ``onnx_streaming``): ONNX export and the
  ONNX Runtime backend;
- :mod:`taae.codec.hub`: hub ids resolved through the Hugging Face cache.
"""

from taae.codec.codec import Codec

__all__ = ["Codec"]
