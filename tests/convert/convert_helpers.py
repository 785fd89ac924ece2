"""Helpers for the converter tests: random ResNets with non-trivial BN statistics, stage outputs."""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Give every BN non-default affine params and running stats, so a key that silently fails to load
    (left at its init: weight 1, bias 0, mean 0, var 1) makes the comparison fail."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.weight.data = 0.5 + torch.rand(n, generator=g)
            mod.bias.data = 0.2 * torch.randn(n, generator=g)
            mod.running_mean = 0.1 * torch.randn(n, generator=g)
            mod.running_var = 0.5 + torch.rand(n, generator=g)
            mod.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
    return model.eval()


def random_resnet(arch: str = "resnet50", seed: int = 0) -> torchvision.models.ResNet:
    torch.manual_seed(seed)
    return randomize_bn(getattr(torchvision.models, arch)(weights=None), seed)


def tv_stages(model: torchvision.models.ResNet, x: torch.Tensor) -> list[torch.Tensor]:
    """torchvision ResNet's four stage outputs (C2-C5), as mmdet's ResNet returns them."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    outs = []
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = layer(x)
        outs.append(x)
    return outs


def resnet50_meta(method: str, **fields) -> dict:
    """``checkpoint['meta']['mixbench']`` of a ResNet-50 pretraining run as a checkpoint stores it (plain types,
    written out here rather than built by the code under test); ``fields`` add to or replace the defaults."""
    return {"method": method, "arch": "resnet50", "width": 1.0, "feature_dim": 2048, **fields}
