"""Frozen feature extractors (files through the converter, live models) vs features computed by hand."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn
import torchvision

from mixbench.base.color import color_meta
from mixbench.convert.api import infer_arch
from mixbench.evaluate import load_feature_extractor
from mixbench.pretrain.backbones import build_backbone
from mixbench.pretrain.features import model_extractor

# skimage.color.rgb2ycbcr (ITU-R BT.601) and CMC's YCbCr statistics, typed from their sources (not imported).
SKIMAGE_YCBCR = torch.tensor(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
)
CMC_MEAN = torch.tensor([116.151, 121.080, 132.342]).view(1, 3, 1, 1)
CMC_STD = torch.tensor([109.500, 111.855, 111.964]).view(1, 3, 1, 1)


def pooled(enc: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision ResNet forward up to the pooled feature, written out layer by layer."""
    enc.eval()
    x = enc.maxpool(enc.relu(enc.bn1(enc.conv1(x))))
    for layer in (enc.layer1, enc.layer2, enc.layer3, enc.layer4):
        x = layer(x)
    return torch.flatten(enc.avgpool(x), 1)


def randomize_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial BN statistics, so a wrong mode (train vs eval) or a lost buffer shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


@pytest.fixture
def rgb():
    return torch.randint(0, 256, (2, 3, 40, 40), generator=torch.Generator().manual_seed(3)).to(torch.uint8)


def test_cmc_checkpoint_is_concat_of_halves(tmp_path, rgb):
    torch.manual_seed(0)
    enc_l, enc_ab = (
        build_backbone("resnet50", 0.5, 1, num_classes=128),
        build_backbone("resnet50", 0.5, 2, 128),
    )
    randomize_bn(enc_l, 1)
    randomize_bn(enc_ab, 2)
    state = {f"encoder_l.{k}": v for k, v in enc_l.state_dict().items()}
    state |= {f"encoder_ab.{k}": v for k, v in enc_ab.state_dict().items()}
    state["contrast.memory_l"] = torch.randn(16, 128)  # memory bank: not part of the encoders
    meta = {"method": "cmc", "arch": "resnet50", "width": 0.5, "feature_dim": 2048, "color": color_meta()}
    path = tmp_path / "cmc.pth"
    torch.save({"state_dict": state, "meta": {"mixbench": meta}}, path)

    ext = load_feature_extractor(path)
    got = ext(rgb)

    x = rgb.double()
    ycbcr = torch.einsum("ij,njhw->nihw", SKIMAGE_YCBCR.double() / 255, x) + torch.tensor(
        [16.0, 128.0, 128.0], dtype=torch.float64
    ).view(1, 3, 1, 1)
    z = ((ycbcr - CMC_MEAN.double()) / CMC_STD.double()).float()
    want = torch.cat([pooled(enc_l, z[:, :1]), pooled(enc_ab, z[:, 1:])], dim=1)
    assert got.shape == (2, 2048) and ext.feature_dim == 2048
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert ext.info["method"] == "cmc"


def test_moco_checkpoint_uses_encoder_q_without_head(tmp_path, rgb):
    import mixbench.pretrain.registry  # noqa: F401  (MoCo's default preprocessor must be registered)
    from mixbench.pretrain.moco import MoCo

    torch.manual_seed(0)
    model = MoCo(arch="resnet18", dim=16, K=32, mlp=True)
    randomize_bn(model.encoder_q, 4)
    mean, std = [120.0, 110.0, 100.0], [50.0, 55.0, 60.0]
    meta = dataclasses.replace(model.mixbench_meta(), pixel_mean=mean, pixel_std=std).to_dict()
    path = tmp_path / "epoch_1.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"mixbench": meta}, "message_hub": {}}, path)

    ext = load_feature_extractor(path)
    x = (rgb.float() - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(ext(rgb), pooled(model.encoder_q, x), rtol=1e-5, atol=1e-5)
    assert ext.feature_dim == 512 and ext.info["method"] == "moco" and ext.info["arch"] == "resnet18"


def test_torchvision_state_dict_and_random_spec(tmp_path, rgb):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    randomize_bn(tv, 5)
    path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), path)
    ext = load_feature_extractor(path)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.testing.assert_close(ext(rgb), pooled(tv, (rgb.float() - mean) / std), rtol=1e-5, atol=1e-5)

    a, b = load_feature_extractor("random:resnet18"), load_feature_extractor("random:resnet18")
    torch.testing.assert_close(a(rgb), b(rgb))  # seeded: the baseline is reproducible
    assert a.info["method"] == "random"


def test_extractor_stays_frozen(rgb):
    ext = load_feature_extractor("random:resnet18")
    before = {k: v.clone() for k, v in ext.state_dict().items()}
    ext.train()  # a wrapper calling .train() must not switch BN to batch statistics
    out = ext(rgb)
    assert not ext.training and not any(m.training for m in ext.modules())
    assert not out.requires_grad and all(not p.requires_grad for p in ext.parameters())
    for k, v in ext.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_infer_arch_reads_depth_from_keys():
    assert infer_arch(build_backbone("resnet50", 0.5, 2).state_dict()) == "resnet50"
    assert infer_arch(torchvision.models.resnet34().state_dict()) == "resnet34"
    assert infer_arch(torchvision.models.resnet18().state_dict()) == "resnet18"


def test_live_model_extractor_equals_its_saved_checkpoint(tmp_path, rgb):
    """The kNN monitor (live model) and `mixbench knn` (the file, through the converter) see the same features."""
    import mixbench.pretrain.registry  # noqa: F401
    from mixbench.pretrain.moco import MoCo

    torch.manual_seed(0)
    model = MoCo(arch="resnet18", dim=16, K=32, mlp=True)
    randomize_bn(model.encoder_q, 7)
    model.train()
    path = tmp_path / "epoch_1.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {"mixbench": model.mixbench_meta().to_dict()}}, path)
    live = model_extractor(model)
    assert model.training and next(model.parameters()).requires_grad  # the training model is untouched
    torch.testing.assert_close(live(rgb), load_feature_extractor(path)(rgb), rtol=0, atol=0)


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "not_a_resnet.pth"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, bad)
    with pytest.raises(ValueError, match="not_a_resnet.pth.*not a ResNet checkpoint of any known layout"):
        load_feature_extractor(bad)
    wrong = tmp_path / "wrong_meta.pth"
    sd = {f"encoder_q.{k}": v for k, v in build_backbone("resnet18").state_dict().items()}
    torch.save({"state_dict": sd, "meta": {"mixbench": {"method": "moco", "arch": "resnet50"}}}, wrong)
    with pytest.raises(ValueError, match="wrong_meta.pth.*resnet50"):
        load_feature_extractor(wrong)
    truncated = tmp_path / "truncated.pth"
    sd.pop("encoder_q.layer4.1.bn2.running_var")
    torch.save(sd, truncated)
    with pytest.raises(ValueError, match="truncated.pth.*missing"):
        load_feature_extractor(truncated)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_feature_extractor(tmp_path / "nope.pth")
