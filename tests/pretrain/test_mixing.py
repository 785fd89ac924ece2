"""Eqs. 3-5 checked pixel by pixel against loops written straight from the paper."""

from __future__ import annotations

import itertools

import pytest
import torch

from mixbench.pretrain.mixing import (
    box_masks,
    global_mixture,
    global_weights,
    partner_images,
    region_mixture,
    region_weights,
)


def _images(n: int, shape=(2, 3, 5, 6), seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(n)]


def _pixels(shape):
    return itertools.product(*(range(s) for s in shape))


@pytest.mark.parametrize("n", [2, 3, 4])
def test_global_mixture_matches_eq3_pixel_by_pixel(n):
    images = _images(n)
    alphas = torch.rand(n - 1, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = global_mixture(images, alphas)
    for b, c, y, x in _pixels(out.shape):
        a = [float(alphas[k, b]) for k in range(n - 1)]
        v = [float(im[b, c, y, x]) for im in images]
        mixed = a[0] * v[0] + (1 - a[0]) * v[1]  # I_m^1 = a1 I1 + b1 I2
        for k in range(1, n - 1):  # I_m^k = a_k I_{k+1} + b_k I_m^{k-1}
            mixed = a[k] * v[k + 1] + (1 - a[k]) * mixed
        assert float(out[b, c, y, x]) == pytest.approx(mixed, abs=1e-12)


def test_global_mixture_n4_written_out():
    i1, i2, i3, i4 = _images(4, shape=(1, 1, 2, 2))
    a = torch.tensor([[0.3], [0.6], [0.8]], dtype=torch.float64)
    m1 = 0.3 * i1 + 0.7 * i2
    m2 = 0.6 * i3 + 0.4 * m1
    m3 = 0.8 * i4 + 0.2 * m2
    torch.testing.assert_close(global_mixture([i1, i2, i3, i4], a), m3)


def test_box_masks_zero_inside_box():
    boxes = torch.tensor([[1, 2, 3, 5]])  # y1, x1, y2, x2
    m = box_masks(boxes, 4, 6)
    assert m.shape == (1, 1, 4, 6)
    for y, x in _pixels((4, 6)):
        inside = 1 <= y < 3 and 2 <= x < 5
        assert float(m[0, 0, y, x]) == (0.0 if inside else 1.0)


def _hand_boxes(n: int, batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y1 = torch.randint(0, h - 1, (n - 1, batch), generator=g)
    x1 = torch.randint(0, w - 1, (n - 1, batch), generator=g)
    y2 = y1 + 1 + torch.randint(0, h, (n - 1, batch), generator=g)
    x2 = x1 + 1 + torch.randint(0, w, (n - 1, batch), generator=g)
    return torch.stack([y1, x1, y2.clamp(max=h), x2.clamp(max=w)], -1)


@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("decay", [0.2, 1.0])
def test_region_mixture_matches_eqs4_5_pixel_by_pixel(n, decay):
    images = _images(n)
    boxes = _hand_boxes(n, 2, 5, 6, seed=n)
    masks = box_masks(boxes, 5, 6)
    out = region_mixture(images, masks, decay)
    for b, c, y, x in _pixels(out.shape):
        inside = [
            int(boxes[k, b, 0]) <= y < int(boxes[k, b, 2]) and int(boxes[k, b, 1]) <= x < int(boxes[k, b, 3])
            for k in range(n - 1)
        ]
        m = [0.0 if i else 1.0 for i in inside]
        v = [float(im[b, c, y, x]) for im in images]
        mixed = m[0] * v[0] + decay * (1 - m[0]) * v[1]  # eq. 4: decay on the first iteration
        for k in range(1, n - 1):  # eq. 5: no decay afterwards
            mixed = m[k] * v[k + 1] + (1 - m[k]) * mixed
        assert float(out[b, c, y, x]) == pytest.approx(mixed, abs=1e-12)


def test_region_decay_only_on_first_iteration():
    # n = 3, all-ones images: pixels inside box 1 only are decayed, inside box 2 keep I_m^1, else I_3.
    ones = [torch.full((1, 1, 4, 4), float(v)) for v in (1, 2, 3)]
    m1 = torch.ones(1, 1, 4, 4)
    m1[..., :2, :] = 0  # rows 0-1 come from (decayed) I_2
    m2 = torch.ones(1, 1, 4, 4)
    m2[..., :, :2] = 0  # columns 0-1 keep I_m^1
    out = region_mixture(ones, torch.stack([m1, m2]), lambda_decay=0.2)[0, 0]
    expected = torch.tensor([[0.4, 0.4, 3, 3], [0.4, 0.4, 3, 3], [1, 1, 3, 3], [1, 1, 3, 3]], dtype=torch.float32)
    torch.testing.assert_close(out, expected)


def test_partner_images_last_is_the_sample():
    x = torch.arange(4.0).view(4, 1, 1, 1)
    perms = torch.tensor([[1, 2, 3, 0], [3, 2, 1, 0]])
    srcs = partner_images(x, perms)
    assert [s.flatten().tolist() for s in srcs] == [[1, 2, 3, 0], [3, 2, 1, 0], [0, 1, 2, 3]]


@pytest.mark.parametrize("n", [2, 4])
def test_global_weights_reconstruct_the_mixture(n):
    # Source j = constant one-hot image e_j: the mixture's channel j is exactly source j's weight.
    images = [torch.eye(n)[j].view(1, n, 1, 1).expand(3, n, 1, 1) for j in range(n)]
    alphas = torch.rand(n - 1, 3, generator=torch.Generator().manual_seed(0))
    mixed = global_mixture(images, alphas)[:, :, 0, 0]  # (N, n)
    torch.testing.assert_close(global_weights(alphas), mixed.T)


def test_region_weights_reconstruct_pixel_shares():
    n = 5
    images = [torch.eye(n)[j].view(1, n, 1, 1).expand(2, n, 5, 6) for j in range(n)]
    masks = box_masks(_hand_boxes(n, 2, 5, 6, seed=3), 5, 6)
    mixed = region_mixture(images, masks, lambda_decay=1.0)  # (N, n, H, W)
    torch.testing.assert_close(region_weights(masks), mixed.mean((2, 3)).T)


def test_mixture_needs_matching_coefficients():
    with pytest.raises(ValueError, match="coefficient"):
        global_mixture(_images(3), torch.rand(1, 2))
    with pytest.raises(ValueError, match="n >= 2"):
        global_mixture(_images(1), torch.rand(0, 2))
