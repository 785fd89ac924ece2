"""Losses against hand-written references (python math on each row)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mixbench.pretrain.losses import contrastive_logits, estimate_Z, nce_loss, softmax_ce, unmix_soft_ce


def _unit(shape, seed):
    return F.normalize(torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1)


def _ref_infonce(q, k, neg, T):
    total = 0.0
    for i in range(q.shape[0]):
        pos = math.exp(float(q[i] @ k[i]) / T)
        negs = sum(math.exp(float(q[i] @ neg[:, j]) / T) for j in range(neg.shape[1]))
        total += -math.log(pos / (pos + negs))  # eq. 1
    return total / q.shape[0]


@pytest.mark.parametrize("N, dim, K", [(1, 4, 3), (5, 8, 16), (3, 16, 7)])
@pytest.mark.parametrize("T", [0.07, 0.2, 1.0])
def test_softmax_ce_equals_eq1(N, dim, K, T):
    q, k = _unit((N, dim), 0), _unit((N, dim), 1)
    neg = _unit((K, dim), 2).T
    logits = contrastive_logits(q, k, neg, T)
    assert logits.shape == (N, 1 + K)
    assert float(softmax_ce(logits)) == pytest.approx(_ref_infonce(q, k, neg, T), rel=1e-9)


@pytest.mark.parametrize("N, K, n_data", [(2, 4, 100), (4, 9, 50)])
def test_nce_loss_equals_formula(N, K, n_data):
    logits = torch.randn(N, 1 + K, generator=torch.Generator().manual_seed(N), dtype=torch.float64)
    Z = estimate_Z(logits, n_data)
    assert Z == pytest.approx(float(torch.exp(logits).mean()) * n_data)
    pn = 1.0 / n_data
    total = 0.0
    for i in range(N):
        h = [math.exp(float(v)) / Z / (math.exp(float(v)) / Z + K * pn) for v in logits[i]]
        total += -(math.log(h[0]) + sum(math.log(1 - hj) for hj in h[1:]))
    assert float(nce_loss(logits, Z, n_data, eps=0.0)) == pytest.approx(total / N, rel=1e-9)


def test_unmix_two_images_is_lam_ce_plus_1mlam_ce():
    q, k = _unit((4, 8), 0), _unit((4, 8), 1)
    neg = _unit((6, 8), 2).T
    perm = torch.tensor([2, 3, 0, 1])
    lam = torch.tensor([0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    # eq. 3 with n = 2: source 1 = partner (weight 1 - lam), source 2 = the sample (weight lam)
    weights = torch.stack([1 - lam, lam])
    loss = unmix_soft_ce([contrastive_logits(q, k[perm], neg, 0.2), contrastive_logits(q, k, neg, 0.2)], weights)
    ref = 0.0
    for i in range(4):
        ce_own = _ref_infonce(q[i : i + 1], k[i : i + 1], neg, 0.2)
        ce_partner = _ref_infonce(q[i : i + 1], k[perm[i] : perm[i] + 1], neg, 0.2)
        ref += float(lam[i]) * ce_own + (1 - float(lam[i])) * ce_partner
    assert float(loss) == pytest.approx(ref / 4, rel=1e-9)
