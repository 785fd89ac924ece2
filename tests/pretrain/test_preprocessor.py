"""MixPreprocessor output == normalise, then eqs. 3-5 applied by hand with the same draws."""

from __future__ import annotations

import pytest
import torch

from mixbench.base.color import IMAGENET_MEAN, IMAGENET_STD, YCBCR_MEAN, YCBCR_STD, rgb_to_ycbcr
from mixbench.pretrain.mixing import box_masks, global_mixture, region_mixture
from mixbench.pretrain.preprocessor import MixPreprocessor
from mixbench.pretrain.sampler import MixSampler


def _batch(n=6, h=8, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8) for _ in range(2)]


def _norm(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    return (x.float() - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def _by_hand(x, plans):
    for plan in plans:
        srcs = [x[p] for p in plan.perms] + [x]
        if plan.kind == "global":
            mixed = global_mixture(srcs, plan.alphas)
        else:
            mixed = region_mixture(srcs, box_masks(plan.boxes, x.shape[2], x.shape[3]), plan.lambda_decay)
        keep = ~plan.mixed
        mixed[keep] = x[keep]
        x = mixed
    return x


@pytest.mark.parametrize("views", ["both", "query"])
def test_global_plus_region_equals_normalise_then_mix(views):
    pre = MixPreprocessor(
        global_mix=dict(n=4, p=0.5), region_mix=dict(n=5, p=0.7, lambda_decay=0.2), views=views, seed=11
    )
    q, k = _batch()
    out = pre({"inputs": [q, k], "data_samples": torch.arange(6)}, training=True)
    plans = out["data_samples"]["mix_plans"]
    ref = MixSampler(seed=11)  # the same draws, in the same order
    assert torch.equal(ref.global_plan(6, 4, 0.5).alphas, plans[0].alphas)
    assert [p.kind for p in plans] == ["global", "region"]
    torch.testing.assert_close(out["inputs"][0], _by_hand(_norm(q), plans))
    k_expected = _by_hand(_norm(k), plans) if views == "both" else _norm(k)
    torch.testing.assert_close(out["inputs"][1], k_expected)
    assert torch.equal(out["data_samples"]["labels"], torch.arange(6))


def test_no_mixing_outside_training_or_with_p0():
    q, k = _batch()
    pre = MixPreprocessor(global_mix=dict(n=2, p=1.0), seed=0)
    out = pre({"inputs": [q, k]}, training=False)
    torch.testing.assert_close(out["inputs"][0], _norm(q))
    pre0 = MixPreprocessor(global_mix=dict(n=3, p=0.0), region_mix=dict(n=2, p=0.0, lambda_decay=0.2))
    out0 = pre0({"inputs": [q, k]}, training=True)
    torch.testing.assert_close(out0["inputs"][1], _norm(k))


def test_region_decay_fades_context_to_the_mean():
    # White images: decayed context = 0.2 * normalised value, i.e. towards the dataset mean.
    pre = MixPreprocessor(region_mix=dict(n=2, p=1.0, lambda_decay=0.0), seed=0)
    q = torch.full((4, 3, 8, 8), 255, dtype=torch.uint8)
    out = pre({"inputs": [q, q]}, training=True)["inputs"][0]
    normalised = _norm(q)
    assert torch.all((out == 0) | torch.isclose(out, normalised))
    assert (out == 0).any()  # some context was decayed to the mean


def test_ycbcr_color_space():
    q, k = _batch()
    pre = MixPreprocessor(color_space="ycbcr")
    out = pre({"inputs": [q]}, training=False)["inputs"][0]
    torch.testing.assert_close(out, _norm(rgb_to_ycbcr(q.float()), YCBCR_MEAN, YCBCR_STD))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(views="key"), "views"),
        (dict(color_space="lab"), "color_space"),
        (dict(global_mix=dict(n=1, p=0.5)), "n must be >= 2"),
        (dict(region_mix=dict(n=5, p=0.5)), "keys"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixPreprocessor(**kwargs)
