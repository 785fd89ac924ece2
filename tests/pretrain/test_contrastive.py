"""MoCo's and CMC's shared mmengine face: the forward modes and the view features are taken from.

Reference: the encoders' pooled features computed here layer by layer (torchvision's ResNet forward without fc).
"""

from __future__ import annotations

import pytest
import torch

from mixbench.pretrain.cmc import CMC
from mixbench.pretrain.moco import MoCo


def _pooled(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return torch.flatten(net.avgpool(x), 1)


def _moco_reference(model: MoCo, x: torch.Tensor) -> torch.Tensor:
    return _pooled(model.encoder_q, x)


def _cmc_reference(model: CMC, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([_pooled(model.encoder_l, x[:, :1]), _pooled(model.encoder_ab, x[:, 1:])], dim=1)


MODELS = {
    "MoCo": (lambda: MoCo(arch="resnet18", dim=8, K=8), _moco_reference),
    "CMC": (lambda: CMC(n_data=8, arch="resnet18", width=0.5, dim=8, K=4), _cmc_reference),
}


@pytest.mark.parametrize("name", MODELS)
def test_forward_modes(name: str) -> None:
    build, reference = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    first, second = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(model, first)
        assert torch.allclose(model(first, mode="tensor"), expected, atol=1e-5)
        # a list of views (as the training loader yields): features of the first view
        assert torch.allclose(model([first, second], mode="predict"), expected, atol=1e-5)
    model.loss = lambda inputs, data_samples: ("loss", inputs, data_samples)  # the dispatch, not a step
    assert model([first, second], {"idx": 1}, mode="loss") == ("loss", [first, second], {"idx": 1})
    with pytest.raises(ValueError, match=f"unknown mode 'train'; {name} supports 'loss', 'tensor' and 'predict'"):
        model(first, mode="train")
