"""torchvision ResNets, full width (MoCo) or with every channel scaled (CMC's half-width ResNet-50).

Key names are exactly torchvision's (``conv1.weight``, ``layer1.0.downsample.0.weight``, ``fc.weight``),
so the converter and the transfer stage can rely on them. For ``width=0.5`` every channel count is halved:
stem conv 32, bottleneck planes 32/64/128/256, block outputs 128/256/512/1024 (ResNet-50), so CMC's two
halves concatenate to 2048.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models import resnet as tv_resnet

from mixbench.base.resnets import ARCHS


class ScaledResNet(tv_resnet.ResNet):
    """torchvision ResNet whose stem and stage widths are multiplied by ``width``.

    torchvision's constructor hard-codes 64/128/256/512 planes, so the scaled stem and stages are set up
    here; the blocks, ``_make_layer``, ``forward`` and the weight init are torchvision's.
    """

    def __init__(
        self,
        block: type[nn.Module],
        layers: list[int],
        width: float = 1.0,
        in_channels: int = 3,
        num_classes: int = 1000,
    ) -> None:
        nn.Module.__init__(self)
        planes = [int(round(p * width)) for p in (64, 128, 256, 512)]
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = planes[0]
        self.dilation = 1
        self.groups = 1
        # torchvision's Bottleneck scales its inner width by base_width / 64: keep 64 so inner == planes.
        self.base_width = 64
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = planes[3] * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        # torchvision's init (kaiming fan_out for convs, BN weight 1 / bias 0).
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.constant_(mod.weight, 1)
                nn.init.constant_(mod.bias, 0)


def feature_dim(arch: str, width: float = 1.0) -> int:
    """Pooled feature dim (input of ``fc``): 2048 for resnet50, 1024 half-width, 512 for resnet18."""
    block, _ = _lookup(arch)
    return int(round(512 * width)) * block.expansion


def _lookup(arch: str) -> tuple[type[nn.Module], list[int]]:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    spec = ARCHS[arch]
    return (tv_resnet.Bottleneck if spec.bottleneck else tv_resnet.BasicBlock), list(spec.blocks)


def build_backbone(arch: str, width: float = 1.0, in_channels: int = 3, num_classes: int = 1000) -> tv_resnet.ResNet:
    """Build a torchvision-style ResNet (``fc`` present, ``num_classes`` outputs).

    Args:
        arch: 'resnet18' | 'resnet34' | 'resnet50' | 'resnet101' | 'resnet152'.
        width: channel multiplier (1.0 = torchvision; 0.5 = CMC's half width).
        in_channels: input channels of ``conv1`` (3 for RGB, 1 for CMC's L view, 2 for CbCr).
        num_classes: outputs of ``fc`` (MoCo/CMC use it as the projection dimension).

    Shape: (N, in_channels, H, W) -> (N, num_classes).

    >>> build_backbone('resnet50', width=0.5, in_channels=1).fc.in_features
    1024
    """
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    block, layers = _lookup(arch)
    if width == 1.0 and in_channels == 3:
        model = getattr(tv_resnet, arch)(weights=None, num_classes=num_classes)
        model.feature_dim = model.fc.in_features
        return model
    return ScaledResNet(block, layers, width=width, in_channels=in_channels, num_classes=num_classes)


def resnet_features(model: tv_resnet.ResNet, x: torch.Tensor) -> torch.Tensor:
    """Pooled backbone features (what ``fc`` sees), e.g. for kNN / linear evaluation.

    Shape: (N, in_channels, H, W) -> (N, feature_dim).
    """
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    return model.avgpool(x).flatten(1)
