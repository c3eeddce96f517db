"""fec.modeling.losses.triplet_loss against triplets worked out by hand."""
import pytest
import torch

from fec.modeling.losses import triplet_loss

MARGINS = [0.1, 0.2, 0.2]


def _t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


# a=(0,0), b=(1,0), c=(1,0.5): d(a,b)=1, d(a,c)=1.25, d(b,c)=0.25.
# Hinges with m=0.1: max(0, 1-1.25+0.1)=0 and max(0, 1-0.25+0.1)=0.85.
ONLY_BC = ((0.0, 0.0), (1.0, 0.0), (1.0, 0.5))
# a=(0,0), b=(1,0), c=(0.5,0.1): d(a,b)=1, d(a,c)=d(b,c)=0.26; both hinges active:
# m=0.1 → 2*0.84 = 1.68; m=0.2 → 2*0.94 = 1.88.
BOTH = ((0.0, 0.0), (1.0, 0.0), (0.5, 0.1))
# a=(0,0), b=(1,0), c=(0,2): d(a,b)=1, d(a,c)=4, d(b,c)=5; no hinge active.
NONE = ((0.0, 0.0), (1.0, 0.0), (0.0, 2.0))


def _loss(triplets, types, reduction="mean", margins=MARGINS):
    a, b, c = (_t(*[t[i] for t in triplets]) for i in range(3))
    return triplet_loss(a, b, c, torch.tensor(types), margins, reduction=reduction)


def test_single_triplets_by_hand():
    assert _loss([NONE], [0]).item() == pytest.approx(0.0, abs=1e-7)
    assert _loss([BOTH], [0]).item() == pytest.approx(1.68, abs=1e-5)
    assert _loss([BOTH], [1]).item() == pytest.approx(1.88, abs=1e-5)
    assert _loss([BOTH], [2]).item() == pytest.approx(1.88, abs=1e-5)


def test_margin_per_type_counts_twice_when_both_hinges_active():
    # Two hinges, each with the margin: the one-/two-class difference is 2 * (0.2 - 0.1).
    diff = _loss([BOTH], [1]) - _loss([BOTH], [0])
    assert diff.item() == pytest.approx(0.2, abs=1e-5)
    # Custom margins are used as given.
    assert _loss([BOTH], [0], margins=[0.3, 0.0, 0.0]).item() == pytest.approx(2 * 1.04, abs=1e-5)


def test_two_sided_hinge_on_b_c():
    # Only max(0, d(a,b) - d(b,c) + m) is active: a one-sided loss anchored at a gives 0.
    assert _loss([ONLY_BC], [0]).item() == pytest.approx(0.85, abs=1e-5)
    assert _loss([ONLY_BC], [1]).item() == pytest.approx(0.95, abs=1e-5)


def test_mixed_batch_is_per_triplet_not_broadcast():
    per = _loss([ONLY_BC, BOTH, NONE], [1, 0, 2], reduction="none")
    assert per.shape == (3,)
    assert per.tolist() == pytest.approx([0.95, 1.68, 0.0], abs=1e-5)
    mean = _loss([ONLY_BC, BOTH, NONE], [1, 0, 2])
    assert mean.dim() == 0
    # (0.95 + 1.68 + 0) / 3. A (B,) margin broadcast against (B, 1) distances would
    # average a 3x3 table instead (margins 0.2, 0.1, 0.2 across each row): ONLY_BC
    # 0.95 + 0.85 + 0.95, BOTH 1.88 + 1.68 + 1.88, NONE 0 → 8.19 / 9 = 0.91.
    assert mean.item() == pytest.approx(2.63 / 3, abs=1e-5)
    assert mean.item() != pytest.approx(8.19 / 9, abs=1e-3)


def test_gradient_by_hand():
    # ONLY_BC, type 0: L = d(a,b) - d(b,c) + m, so dL/da = 2(a-b) = (-2, 0),
    # dL/db = 2(b-a) - 2(b-c) = 2(c-a) = (2, 1), dL/dc = 2(b-c) = (0, -1).
    a, b, c = (_t(p).requires_grad_() for p in ONLY_BC)
    triplet_loss(a, b, c, torch.tensor([0]), MARGINS).backward()
    torch.testing.assert_close(a.grad, _t((-2.0, 0.0)))
    torch.testing.assert_close(b.grad, _t((2.0, 1.0)))
    torch.testing.assert_close(c.grad, _t((0.0, -1.0)))
    # Averaged over the batch: a second, inactive triplet halves the gradients.
    a2, b2, c2 = (_t(p, q).requires_grad_() for p, q in zip(ONLY_BC, NONE))
    triplet_loss(a2, b2, c2, torch.tensor([0, 0]), MARGINS).backward()
    torch.testing.assert_close(a2.grad, _t((-1.0, 0.0), (0.0, 0.0)))


def test_half_precision_embeddings_give_float32_loss():
    a, b, c = (_t(p).half() for p in BOTH)
    loss = triplet_loss(a, b, c, torch.tensor([0]), torch.tensor(MARGINS))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(1.68, abs=2e-3)


def test_bad_shapes_raise():
    a = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="types must have shape"):
        triplet_loss(a, a, a, torch.zeros(2, 1, dtype=torch.long), MARGINS)
    with pytest.raises(ValueError, match="share one"):
        triplet_loss(a, a, torch.zeros(3, 4), torch.zeros(2, dtype=torch.long), MARGINS)
