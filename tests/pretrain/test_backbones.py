"""build_backbone: torchvision key names; half width halves every channel (CMC's ResNet50-half)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from mixbench.pretrain.backbones import build_backbone, feature_dim, resnet_features


def test_full_width_is_torchvision():
    ours = build_backbone("resnet18", num_classes=10).state_dict()
    ref = torchvision.models.resnet18(num_classes=10).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}


def test_half_width_resnet50_halves_every_channel():
    half = build_backbone("resnet50", width=0.5, in_channels=1, num_classes=128).state_dict()
    ref = torchvision.models.resnet50(num_classes=128).state_dict()
    assert list(half) == list(ref)  # same keys, same order
    for key, t in ref.items():
        if t.dim() == 0:  # num_batches_tracked
            continue
        expected = list(t.shape)
        if key == "conv1.weight":
            expected[:2] = [t.shape[0] // 2, 1]  # 1 input channel (Y)
        elif key == "fc.weight":
            expected[1] = t.shape[1] // 2
        elif key == "fc.bias":
            pass
        else:
            expected[0] //= 2
            if t.dim() == 4:
                expected[1] //= 2
        assert list(half[key].shape) == expected, key
    assert feature_dim("resnet50", 0.5) == 1024 and feature_dim("resnet50") == 2048


def test_features_are_the_fc_input():
    model = build_backbone("resnet18", width=0.5, in_channels=2, num_classes=7).eval()
    x = torch.randn(2, 2, 32, 32)
    feats = resnet_features(model, x)
    assert feats.shape == (2, 256)
    torch.testing.assert_close(model.fc(feats), model(x))


def test_bad_arch():
    with pytest.raises(ValueError, match="unknown arch"):
        build_backbone("vgg16")
