"""ResidualVectorQuantizer: DAC's per-item dropout, raw-row lookup, losses, gradients and code round trips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from taae.quantizers.rvq import ResidualVectorQuantizer

B, D, S, K, SIZE = 16, 12, 5, 6, 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread costs more than the work


@pytest.fixture
def rvq():
    return ResidualVectorQuantizer(D, n_codebooks=K, codebook_size=SIZE, codebook_dim=4, quantizer_dropout=0.5)


def test_shapes_dtype_and_range(rvq):
    out = rvq.eval()(torch.randn(B, D, S))
    assert out.z_q.shape == (B, D, S)
    assert out.codes.shape == (B, K, S) and out.codes.dtype == torch.int64
    assert out.latents.shape == (B, K * 4, S)
    assert int(out.codes.min()) >= 0 and int(out.codes.max()) < SIZE
    assert torch.equal(out.n_quantizers, torch.full((B,), K))


def test_dropout_is_per_item_on_the_first_items(rvq):
    torch.manual_seed(3)
    out = rvq.train()(torch.randn(B, D, S))
    n_q = out.n_quantizers
    n_drop = int(B * rvq.quantizer_dropout)
    assert torch.equal(n_q[n_drop:], torch.full((B - n_drop,), K))  # DAC: the FIRST int(B·p) items drop, not a subset
    assert ((n_q[:n_drop] >= 1) & (n_q[:n_drop] <= K)).all()
    assert len(set(n_q[:n_drop].tolist())) > 1  # per item, not one depth per batch
    assert out.codes.shape == (B, K, S)  # every stage runs in training (keeps DDP's graph complete)


@pytest.mark.parametrize("p, expect_drop", [(0.0, 0), (1.0, B), (0.3, int(B * 0.3))])
def test_dropout_fraction(p, expect_drop):
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(D, n_codebooks=K, codebook_size=SIZE, quantizer_dropout=p).train()
    n_q = rvq(torch.randn(B, D, S)).n_quantizers
    assert torch.equal(n_q[expect_drop:], torch.full((B - expect_drop,), K))


def test_masked_stages_contribute_exactly_zero(rvq):
    z = torch.randn(B, D, S)
    torch.manual_seed(1)
    dropped = rvq.train()(z)
    rvq.eval()
    for k in dropped.n_quantizers.unique().tolist():
        items = dropped.n_quantizers == k
        ref = rvq(z, n_quantizers=k)  # stops after k stages: later stages never touch z_q
        assert torch.equal(dropped.z_q[items], ref.z_q[items])


def test_n_quantizers_honoured_in_train_mode(rvq):
    z = torch.randn(B, D, S)
    ref = rvq.eval()(z, n_quantizers=2)
    out = rvq.train()(z, n_quantizers=2)
    assert torch.equal(out.n_quantizers, torch.full((B,), 2))
    assert torch.equal(out.z_q, ref.z_q)
    assert torch.equal(out.codes[:, :2], ref.codes)
    assert ref.codes.shape == (B, 2, S)
    no_dropout = rvq.train()(z, dropout=False)  # explicit flag: train mode without dropout
    assert torch.equal(no_dropout.n_quantizers, torch.full((B,), K))
    with pytest.raises(ValueError, match="mutually exclusive"):
        rvq(z, n_quantizers=2, dropout=True)
    with pytest.raises(ValueError, match="n_quantizers"):
        rvq(z, n_quantizers=K + 1)


def test_from_codes_uses_exactly_the_first_k(rvq):
    rvq.eval()
    z = torch.randn(B, D, S)
    codes = rvq(z).codes
    for k in (1, 3, K):
        torch.testing.assert_close(rvq.from_codes(codes[:, :k]), rvq(z, n_quantizers=k).z_q, atol=1e-5, rtol=1e-5)
    altered = codes.clone()
    altered[:, 3] = (altered[:, 3] + 1) % SIZE
    assert torch.equal(rvq.from_codes(altered[:, :3]), rvq.from_codes(codes[:, :3]))
    assert not torch.equal(rvq.from_codes(altered), rvq.from_codes(codes))
    with pytest.raises(ValueError, match="code rows"):
        rvq.from_codes(torch.zeros(1, K + 1, S, dtype=torch.long))


def test_lookup_is_cosine_and_returns_raw_rows():
    rvq = ResidualVectorQuantizer(2, n_codebooks=1, codebook_size=2, codebook_dim=2, quantizer_dropout=0.0)
    stage = rvq.quantizers[0]
    with torch.no_grad():
        # Row 0 is long but points away at 45°; row 1 is short and aligned: cosine picks row 1, Euclidean row 0.
        stage.codebook.weight.copy_(torch.tensor([[10.0, 10.0], [0.1, 0.0]]))
    z_e = torch.tensor([[[1.0], [0.0]]])  # (B=1, E=2, S=1)
    codes = stage.lookup(z_e)
    assert codes.item() == 1
    assert torch.equal(stage.embed(codes), torch.tensor([[[0.1], [0.0]]]))  # raw row, not normalised


def test_losses_equal_hand_computed_mse():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(3, n_codebooks=2, codebook_size=4, codebook_dim=2, quantizer_dropout=1.0)
    z = torch.randn(4, 3, 2)
    torch.manual_seed(5)
    out = rvq.train()(z)
    masks = [(out.n_quantizers > i).float() for i in range(2)]
    with torch.no_grad():
        residual, commit, book = z.clone(), 0.0, 0.0
        for i, stage in enumerate(rvq.quantizers):
            z_e = stage.in_proj(residual)  # (B, E, S)
            rows = F.normalize(stage.codebook.weight, dim=-1)
            cos = torch.einsum("bes,ne->bsn", F.normalize(z_e, dim=1), rows)
            c = stage.codebook.weight[cos.argmax(-1)].permute(0, 2, 1)  # raw rows (B, E, S)
            per_item = ((z_e - c) ** 2).mean(dim=(1, 2))  # MSE mean over (E, S): same value for both losses
            commit += (per_item * masks[i]).mean()
            book += (per_item * masks[i]).mean()
            residual = residual - stage.out_proj(c)
    torch.testing.assert_close(out.commitment_loss, commit, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.codebook_loss, book, atol=1e-6, rtol=1e-6)
    assert not torch.equal(masks[1], torch.ones(4))  # the mask actually removed something in this case


def test_gradients_straight_through_and_codebook(rvq):
    rvq.eval()
    z = torch.randn(B, D, S, requires_grad=True)
    out = rvq(z)
    out.z_q.square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # straight-through reaches the encoder
    stage = rvq.quantizers[0]
    assert stage.in_proj.parametrizations.weight.original1.grad.abs().sum() > 0
    assert stage.codebook.weight.grad is None or stage.codebook.weight.grad.abs().sum() == 0  # stop-gradient

    rvq.zero_grad()
    rvq(z.detach()).codebook_loss.backward()
    assert stage.codebook.weight.grad.abs().sum() > 0  # codebook loss moves the codebook
    grad = stage.in_proj.parametrizations.weight.original1.grad
    assert grad is None or grad.abs().sum() == 0  # ... and not the encoder side

    rvq.zero_grad()
    rvq(z.detach()).commitment_loss.backward()
    assert stage.in_proj.parametrizations.weight.original1.grad.abs().sum() > 0
    assert stage.codebook.weight.grad is None or stage.codebook.weight.grad.abs().sum() == 0


def test_every_parameter_gets_a_gradient_under_dropout(rvq):
    torch.manual_seed(2)
    out = rvq.train()(torch.randn(B, D, S))
    (out.z_q.square().mean() + out.commitment_loss + out.codebook_loss).backward()
    missing = [name for name, p in rvq.named_parameters() if p.grad is None]
    assert not missing  # DDP (find_unused_parameters=False) needs every parameter in the graph


@pytest.mark.parametrize("key, kwargs", [
    ("n_codebooks", dict(n_codebooks=0)),
    ("codebook_size", dict(codebook_size=0)),
    ("quantizer_dropout", dict(quantizer_dropout=1.5)),
])
def test_constructor_validation(key, kwargs):
    args = dict(input_dim=D, n_codebooks=K, codebook_size=SIZE) | kwargs
    with pytest.raises(ValueError, match=key):
        ResidualVectorQuantizer(**args)
