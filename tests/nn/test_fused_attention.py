"""FlexAttention on the CPU: taae's compiled ``flex`` path (block mask + scale) equals the chunked backend.

On CUDA the GPU suite checks ``flex`` in training; here torch's CPU FlexAttention (inductor, forward only: it has no
CPU backward) checks taae's side of it: the band mask, the scale and the dynamic-length compile.
"""

from __future__ import annotations

import pytest
import torch

from taae.nn.attention import windowed_attention
from taae.nn.fused_attention import _flex


@pytest.mark.slow
def test_flex_on_cpu_equals_chunked():
    from torch._dynamo.utils import counters

    window, scale = (3, 5), 0.3
    for n in (200, 517):  # not multiples of FlexAttention's 128-token blocks
        q, k, v = (torch.randn(1, 2, n, 16, generator=torch.Generator().manual_seed(i)) for i in range(3))
        try:
            with torch.no_grad():
                got = _flex(q, k, v, *window, scale)
        except Exception as err:  # noqa: BLE001 - an old torch or a missing C++ compiler can fail many ways
            pytest.skip(f"torch {torch.__version__} cannot compile FlexAttention on this CPU: {type(err).__name__}")
        expected = windowed_attention(q, k, v, window, backend="chunked", scale=scale)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=lambda m, n=n: f"N={n}: {m}")
    assert counters["stats"]["unique_graphs"] >= 1
