"""CMC: YCbCr split, half-width encoders, bank logits/loss and bank update against hand computations."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from mixbench.base.color import YCBCR_MEAN, YCBCR_STD
from mixbench.pretrain.cmc import CMC, split_views
from mixbench.pretrain.negatives import update_memory_bank


def test_ycbcr_split_by_hand():
    rgb = torch.tensor([[255.0, 0.0, 0.0], [10.0, 200.0, 30.0]]).view(2, 3, 1, 1)
    pre = CMC(n_data=8, arch="resnet18", K=4).data_preprocessor
    x = pre({"inputs": [rgb]}, training=False)["inputs"][0]
    lum, ab = split_views(x)
    assert lum.shape == (2, 1, 1, 1) and ab.shape == (2, 2, 1, 1)
    for i, (r, g, b) in enumerate([(255, 0, 0), (10, 200, 30)]):
        y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255  # skimage rgb2ycbcr, BT.601
        cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
        cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
        assert float(lum[i]) == pytest.approx((y - YCBCR_MEAN[0]) / YCBCR_STD[0], abs=1e-5)
        assert float(ab[i, 0]) == pytest.approx((cb - YCBCR_MEAN[1]) / YCBCR_STD[1], abs=1e-5)
        assert float(ab[i, 1]) == pytest.approx((cr - YCBCR_MEAN[2]) / YCBCR_STD[2], abs=1e-5)


def test_half_width_resnet50_keys_and_channels():
    m = CMC(n_data=8, arch="resnet50", width=0.5, K=4)
    sd = m.state_dict()
    assert sd["encoder_l.conv1.weight"].shape == (32, 1, 7, 7)
    assert sd["encoder_ab.conv1.weight"].shape == (32, 2, 7, 7)
    assert sd["encoder_l.layer4.2.conv3.weight"].shape == (1024, 256, 1, 1)
    assert sd["encoder_l.layer1.0.downsample.0.weight"].shape == (128, 32, 1, 1)
    assert m.mixbench_meta().feature_dim == 2048 and m.mixbench_meta().color["space"] == "ycbcr"
    assert m.extract_feat(torch.zeros(2, 3, 32, 32)).shape == (2, 2048)
    # the two halves, the two memory banks and their NCE normalisers: nothing else (the converter's contract)
    assert {k.split(".")[0] for k in sd} == {"encoder_l", "encoder_ab", "memory_l", "memory_ab", "Z_l", "Z_ab"}
    assert sd["memory_l"].shape == sd["memory_ab"].shape == (8, 128)


def test_memory_bank_update_by_hand():
    bank = F.normalize(torch.randn(6, 4), dim=1)
    before = bank.clone()
    feats = F.normalize(torch.randn(2, 4), dim=1)
    update_memory_bank(bank, torch.tensor([1, 4]), feats, momentum=0.5)
    for row, f in zip([1, 4], feats):
        v = 0.5 * before[row] + 0.5 * f
        torch.testing.assert_close(bank[row], v / v.norm())
    untouched = [0, 2, 3, 5]
    torch.testing.assert_close(bank[untouched], before[untouched])


@pytest.mark.parametrize("loss_type", ["softmax", "nce"])
def test_cmc_loss_matches_reference(loss_type):
    torch.manual_seed(0)
    model = CMC(n_data=10, arch="resnet18", width=0.5, dim=8, K=5, T=0.1, loss=loss_type).train()
    ref = copy.deepcopy(model)
    x = torch.randn(3, 3, 32, 32)
    y = torch.tensor([7, 2, 5])
    torch.manual_seed(123)
    out = model.loss([x], {"labels": {"idx": y}})
    torch.manual_seed(123)
    neg = torch.randint(0, 10, (3, 5))  # the same uniform draws as the model
    idx = torch.cat([y[:, None], neg], 1)
    fl = F.normalize(ref.encoder_l(x[:, :1]), dim=1)
    fab = F.normalize(ref.encoder_ab(x[:, 1:]), dim=1)
    out_l = torch.stack([ref.memory_ab[idx[i]] @ fl[i] for i in range(3)]) / 0.1  # L vs ab memory
    out_ab = torch.stack([ref.memory_l[idx[i]] @ fab[i] for i in range(3)]) / 0.1
    for logits, got, z in [(out_l, out["loss_l"], model.Z_l), (out_ab, out["loss_ab"], model.Z_ab)]:
        if loss_type == "softmax":
            expected = -torch.log_softmax(logits, 1)[:, 0].mean()
        else:
            Z = float(torch.exp(logits.detach()).mean()) * 10
            assert float(z) == pytest.approx(Z, rel=1e-5)
            p = torch.exp(logits) / Z
            kpn = 5 / 10
            expected = -(torch.log(p[:, 0] / (p[:, 0] + kpn)) + torch.log(kpn / (p[:, 1:] + kpn)).sum(1)).mean()
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # banks updated with momentum 0.5 at the samples' rows
    v = 0.5 * ref.memory_l[y] + 0.5 * fl.detach()
    torch.testing.assert_close(model.memory_l[y], F.normalize(v, dim=1))


def test_cmc_needs_ycbcr_and_known_loss():
    with pytest.raises(ValueError, match="ycbcr"):
        CMC(n_data=8, arch="resnet18", data_preprocessor=dict(type="MixPreprocessor", color_space="rgb"))
    with pytest.raises(ValueError, match="loss"):
        CMC(n_data=8, arch="resnet18", loss="hinge")
    with pytest.raises(ValueError, match="n_data"):
        CMC(n_data=None, arch="resnet18")
