"""MixSampler: shapes, statistics against the Beta/Bernoulli formulas, determinism under a seed."""

from __future__ import annotations

import pytest
import torch

from mixbench.pretrain.sampler import MixSampler


def test_global_plan_shapes_and_permutations():
    plan = MixSampler(seed=0).global_plan(batch_size=16, n=4, p=0.5)
    assert plan.kind == "global" and plan.boxes is None and plan.box_lams is None
    assert plan.perms.shape == (3, 16) and plan.alphas.shape == (3, 16) and plan.mixed.shape == (16,)
    for perm in plan.perms:
        assert sorted(perm.tolist()) == list(range(16))
    assert ((plan.alphas >= 0) & (plan.alphas <= 1)).all()


def test_region_plan_boxes_inside_image_with_cutmix_area():
    h, w = 32, 40
    plan = MixSampler(seed=1).region_plan(batch_size=4000, n=2, p=1.0, height=h, width=w, lambda_decay=0.2)
    y1, x1, y2, x2 = plan.boxes[0].unbind(-1)
    assert (y1 >= 0).all() and (x1 >= 0).all() and (y2 <= h).all() and (x2 <= w).all()
    assert (y1 <= y2).all() and (x1 <= x2).all()
    # Unclipped boxes (centre far from the border) have side sqrt(1 - lam) H, rounded down to even numbers.
    assert plan.alphas is None
    lam = plan.box_lams[0]
    cut_h = (h * torch.sqrt(1 - lam)).long() // 2 * 2
    interior = (y1 > 0) & (y2 < h)
    assert torch.equal((y2 - y1)[interior], cut_h[interior])
    assert plan.lambda_decay == 0.2


def test_beta_and_bernoulli_statistics():
    s = MixSampler(alpha=1.0, seed=2)
    plan = s.global_plan(batch_size=200_000, n=2, p=0.3)
    a = plan.alphas[0].double()
    assert a.mean().item() == pytest.approx(0.5, abs=0.005)  # Beta(1,1): mean 1/2
    assert a.var().item() == pytest.approx(1 / 12, abs=0.002)  # variance 1/12
    assert plan.mixed.double().mean().item() == pytest.approx(0.3, abs=0.005)
    b = MixSampler(alpha=0.2, seed=3).global_plan(200_000, 2, 1.0).alphas[0].double()
    assert b.var().item() == pytest.approx(0.2 * 0.2 / (0.4**2 * 1.4), abs=0.003)  # ab / ((a+b)^2 (a+b+1))


def test_same_seed_same_draws_and_state_roundtrip():
    a, b = MixSampler(seed=7), MixSampler(seed=7)
    pa, pb = a.region_plan(8, 5, 0.5, 16, 16, 0.2), b.region_plan(8, 5, 0.5, 16, 16, 0.2)
    for x, y in [(pa.perms, pb.perms), (pa.box_lams, pb.box_lams), (pa.boxes, pb.boxes), (pa.mixed, pb.mixed)]:
        assert torch.equal(x, y)
    state = a.state_dict()
    first = a.global_plan(8, 4, 0.5)
    a.load_state_dict(state)
    assert torch.equal(a.global_plan(8, 4, 0.5).alphas, first.alphas)
    assert not torch.equal(MixSampler(seed=8).global_plan(8, 4, 0.5).alphas, first.alphas)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda s: s.global_plan(4, 1, 0.5), "n >= 2"),
        (lambda s: s.global_plan(4, 2, 1.5), "p must be"),
        (lambda s: s.region_plan(4, 2, 0.5, 8, 8, 2.0), "lambda_decay"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(MixSampler(seed=0))


@pytest.mark.parametrize("kind", ["global", "region"])
def test_plan_to_moves_every_tensor_and_keeps_the_rest(kind):
    s = MixSampler(seed=9)
    plan = s.global_plan(6, 3, 0.5, "authors") if kind == "global" else s.region_plan(6, 3, 0.5, 8, 8, 0.2, "authors")
    moved = plan.to("meta")
    for name in ("perms", "alphas", "box_lams", "boxes", "mixed", "steps"):
        before, after = getattr(plan, name), getattr(moved, name)
        assert (before is None) == (after is None), name
        if before is not None:
            assert after.device.type == "meta" and after.shape == before.shape and after.dtype == before.dtype, name
    assert (moved.kind, moved.lambda_decay, moved.semantics) == (kind, plan.lambda_decay, "authors")
