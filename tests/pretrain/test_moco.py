"""MoCo: queue update, momentum update and the loss of one step, each against a hand computation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from mixbench.pretrain.losses import contrastive_logits
from mixbench.pretrain.moco import MoCo
from mixbench.pretrain.negatives import dequeue_and_enqueue


def test_queue_update_wraps_and_stores_keys():
    dim, K = 3, 5
    queue = torch.zeros(dim, K)
    ptr = torch.zeros(1, dtype=torch.long)
    k1 = torch.arange(6.0).view(2, 3)  # keys 0, 1
    dequeue_and_enqueue(queue, ptr, k1)
    assert int(ptr) == 2 and torch.equal(queue[:, :2], k1.T)
    k2 = torch.arange(6.0, 15.0).view(3, 3)
    dequeue_and_enqueue(queue, ptr, k2)
    assert int(ptr) == 0 and torch.equal(queue[:, 2:], k2.T)
    k3 = -torch.arange(9.0).view(3, 3)
    dequeue_and_enqueue(queue, ptr, k3)  # columns 0, 1, 2; column 3-4 keep k2's last two rows
    assert int(ptr) == 3
    assert torch.equal(queue[:, :3], k3.T) and torch.equal(queue[:, 3:], k2[1:].T)
    ptr[0] = 4
    dequeue_and_enqueue(queue, ptr, k1)  # wraps: columns 4 and 0
    assert int(ptr) == 1 and torch.equal(queue[:, 4], k1[0]) and torch.equal(queue[:, 0], k1[1])
    with pytest.raises(ValueError, match="larger than the queue"):
        dequeue_and_enqueue(queue, ptr, torch.zeros(6, 3))


@pytest.fixture(scope="module")
def moco():
    torch.manual_seed(0)
    return MoCo(arch="resnet18", dim=16, K=32, m=0.9, T=0.2, mlp=True)


def test_state_dict_keys_follow_the_contract(moco):
    keys = list(moco.state_dict())
    assert "queue" in keys and "queue_ptr" in keys
    assert {"encoder_q.fc.0.weight", "encoder_q.fc.2.weight", "encoder_k.layer1.0.conv1.weight"} <= set(keys)
    assert all(k.startswith(("encoder_q.", "encoder_k.", "queue")) for k in keys)
    assert not any(p.requires_grad for p in moco.encoder_k.parameters())


def test_momentum_update_by_hand(moco):
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(0.01)
    q_params = [p.clone() for p in moco.encoder_q.parameters()]
    k_params = [p.clone() for p in moco.encoder_k.parameters()]
    moco._momentum_update_key_encoder()
    for pq, pk, new in zip(q_params, k_params, moco.encoder_k.parameters()):
        torch.testing.assert_close(new, 0.9 * pk + 0.1 * pq)


def test_loss_step_matches_reference(moco):
    torch.manual_seed(1)
    model = copy.deepcopy(moco).train()
    im_q, im_k = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    ref = copy.deepcopy(model)
    queue_before = model.queue.clone()
    out = model.loss([im_q, im_k], {"mix_plans": []})
    # reference written out: momentum update, keys, logits [pos, queue] / T, CE with label 0
    with torch.no_grad():
        for pq, pk in zip(ref.encoder_q.parameters(), ref.encoder_k.parameters()):
            pk.copy_(0.9 * pk + 0.1 * pq)
        k = F.normalize(ref.encoder_k(im_k), dim=1)
    q = F.normalize(ref.encoder_q(im_q), dim=1)
    l_pos = (q * k).sum(1, keepdim=True)
    l_neg = q @ queue_before
    logits = torch.cat([l_pos, l_neg], 1) / 0.2
    expected = -torch.log_softmax(logits, 1)[:, 0].mean()
    torch.testing.assert_close(out["loss"], expected)
    torch.testing.assert_close(contrastive_logits(q, k, queue_before, 0.2), logits)
    torch.testing.assert_close(model.queue[:, :4], k.T)  # keys enqueued at ptr 0
    assert int(model.queue_ptr) == 4
    out["loss"].backward()
    assert model.encoder_q.conv1.weight.grad is not None and model.encoder_k.conv1.weight.grad is None


def test_unmix_needs_query_only_mixing():
    with pytest.raises(ValueError, match="views='query'"):
        MoCo(arch="resnet18", K=8, unmix=True)
    m = MoCo(
        arch="resnet18", dim=8, K=16, unmix=True,
        data_preprocessor=dict(type="MixPreprocessor", global_mix=dict(n=2, p=1.0), views="query", seed=0),
    )  # fmt: skip
    torch.manual_seed(0)
    data = {"inputs": [torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)] * 2}
    batch = m.data_preprocessor(data, training=True)
    (plan,) = batch["data_samples"]["mix_plans"]
    im_q, im_k = batch["inputs"]
    ref = copy.deepcopy(m)
    queue_before = m.queue.clone()
    loss = m.loss(**batch)["loss"]
    # Un-Mix written out (n = 2, printed eq. 3: I_m = a_1 I_1 + (1 - a_1) I_2 with I_2 the sample, I_1 its partner):
    # a_1 CE(q, k_partner) + (1 - a_1) CE(q, k_own), each CE against [positive, queue] / T, label 0.
    with torch.no_grad():
        for pq, pk in zip(ref.encoder_q.parameters(), ref.encoder_k.parameters()):
            pk.copy_(0.999 * pk + 0.001 * pq)
        k = F.normalize(ref.encoder_k(im_k), dim=1)
    q = F.normalize(ref.encoder_q(im_q), dim=1)

    def ce(keys: torch.Tensor) -> torch.Tensor:  # (N,) per-sample InfoNCE with ``keys`` as positives
        logits = torch.cat([(q * keys).sum(1, keepdim=True), q @ queue_before], 1) / m.T
        return -torch.log_softmax(logits, 1)[:, 0]

    a1 = plan.alphas[0]
    assert bool(plan.mixed.all())  # p = 1: every sample mixed
    expected = (a1 * ce(k[plan.perms[0]])).mean() + ((1 - a1) * ce(k)).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_meta_is_plain_data(moco):
    meta = moco.mixbench_meta().to_dict()
    assert meta["method"] == "moco" and meta["arch"] == "resnet18" and meta["feature_dim"] == 512
    assert meta["pixel_mean"] == [123.675, 116.28, 103.53] and meta["color"] is None
