"""CMC fold: the folded RGB ResNet-50's feature == concat(L half(Y), ab half(CbCr)) on the same RGB input.

Reference: the two half-width networks (``pretrain.backbones.build_backbone``) run separately on CMC's
normalised YCbCr input, computed here from the colour matrix (borders included: odd sizes, stem padding).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from convert_helpers import randomize_bn, resnet50_meta

from mixbench.base.color import color_meta
from mixbench.convert.api import convert_checkpoint
from mixbench.pretrain.backbones import build_backbone

CMC_META = resnet50_meta("cmc", width=0.5, pixel_mean=[0.0, 0.0, 0.0], pixel_std=[1.0, 1.0, 1.0], mixture={},
                         config_name="cmc_r50")


@pytest.fixture(scope="module")
def halves(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    """CMC's L half (1 input channel) and ab half (2), half width, random BN statistics, eval mode."""
    torch.manual_seed(seed)
    l_half = randomize_bn(build_backbone("resnet50", width=0.5, in_channels=1, num_classes=128), seed)
    ab_half = randomize_bn(build_backbone("resnet50", width=0.5, in_channels=2, num_classes=128), seed + 1)
    return l_half, ab_half


def _save_cmc(l_half, ab_half, path: Path, color: dict | None) -> Path:
    sd = {
        **{f"encoder_l.{k}": v for k, v in l_half.state_dict().items()},
        **{f"encoder_ab.{k}": v for k, v in ab_half.state_dict().items()},
        "memory_l": torch.randn(100, 128),
        "memory_ab": torch.randn(100, 128),
        "params": torch.tensor([1.0]),
    }
    meta = {"mixbench": {**CMC_META, "color": color}} if color is not None else {"epoch": 1}
    torch.save({"state_dict": sd, "meta": meta}, path)
    return path


def _feature(model, x: torch.Tensor) -> torch.Tensor:
    """Pooled feature (input of fc), (N, C)."""
    return torch.flatten(
        model.avgpool(
            model.layer4(
                model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))))
            )
        ),
        1,
    )


def _cmc_input(rgb: torch.Tensor, color: dict) -> torch.Tensor:
    """CMC's encoder input from RGB in [0, 255]: (M rgb + o - mu) / s, (N, 3, H, W)."""
    m = torch.tensor(color["matrix"], dtype=torch.float64)
    ycc = torch.einsum("ij,njhw->nihw", m, rgb.double()) + torch.tensor(color["offset"]).view(1, 3, 1, 1)
    return (
        (ycc - torch.tensor(color["mean"]).view(1, 3, 1, 1)) / torch.tensor(color["std"]).view(1, 3, 1, 1)
    ).float()


def _modified_color() -> dict:
    """A different (still linear) YCbCr normalisation: proves the fold reads the checkpoint's meta."""
    c = color_meta()
    c["mean"] = [100.0, 130.0, 120.0]
    c["std"] = [50.0, 40.0, 30.0]
    return c


# 'modified': the fold must read the transform from the checkpoint's meta; 'no-meta': falls back to
# mixbench.base.color's constants (the real transform) and says so.
@pytest.mark.parametrize("color", [_modified_color(), None], ids=["meta-modified", "no-meta"])
def test_cmc_fold_equals_concatenated_halves(color: dict | None, halves, tmp_path: Path) -> None:
    l_half, ab_half = halves
    src = _save_cmc(l_half, ab_half, tmp_path / "cmc.pth", color)
    rep = convert_checkpoint(src, tmp_path / "folded.pth", to="torchvision")
    assert rep.source_layout == "mixbench-cmc" and rep.arch == "resnet50" and rep.n_tensors == 318
    assert rep.rule_counts == {"encoder_l": 318, "drop_heads": 4, "encoder_ab": 318, "drop_memory": 3}
    if color is None:
        assert any("ASSUMED" in n for n in rep.notes)
        color = color_meta()

    folded = torchvision.models.resnet50(weights=None)
    res = folded.load_state_dict(torch.load(tmp_path / "folded.pth", weights_only=True), strict=False)
    assert sorted(res.missing_keys) == ["fc.bias", "fc.weight"] and not res.unexpected_keys
    folded.eval()

    # the folded model's pixel mean: CMC's YCbCr mean mapped back to RGB (solved independently here)
    mean = torch.tensor(rep.meta.pixel_mean, dtype=torch.float64)
    m = torch.tensor(color["matrix"], dtype=torch.float64)
    torch.testing.assert_close(
        m @ mean + torch.tensor(color["offset"], dtype=torch.float64),
        torch.tensor(color["mean"], dtype=torch.float64),
    )
    std = torch.tensor(rep.meta.pixel_std)

    rgb = torch.rand(2, 3, 53, 67, generator=torch.Generator().manual_seed(3)) * 255
    z = (rgb - mean.float().view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    x = _cmc_input(rgb, color)
    with torch.no_grad():
        # stem conv, borders included: a wrong pixel mean shows up where the 7x7 window meets the padding
        c1_ref = torch.cat([l_half.conv1(x[:, :1]), ab_half.conv1(x[:, 1:])], 1)
        torch.testing.assert_close(folded.conv1(z), c1_ref, atol=1e-4 * c1_ref.abs().max().item(), rtol=1e-4)
        ref = torch.cat([_feature(l_half, x[:, :1]), _feature(ab_half, x[:, 1:])], 1)
        got = _feature(folded, z)
    assert got.shape == ref.shape == (2, 2048)
    torch.testing.assert_close(got, ref, atol=1e-4 * ref.abs().max().item(), rtol=1e-4)


def test_fold_needs_its_own_pixel_mean(halves) -> None:
    """Sanity of the test above: the same weights fed with ImageNet's mean, not the folded one, disagree."""
    from mixbench.convert.cmc_fold import fold_cmc, fold_pixel_mean

    l_half, ab_half = halves
    c = color_meta()
    conv1s = {
        "l.conv1.weight": l_half.conv1.weight.detach(),
        "ab.conv1.weight": ab_half.conv1.weight.detach(),
    }
    std = [58.395, 57.12, 57.375]
    w = fold_cmc(conv1s, c, std)["conv1.weight"]
    rgb = torch.full((1, 3, 32, 32), 0.0)  # black image: far from the mean, so padding zeros matter
    ref = torch.cat(
        [l_half.conv1(_cmc_input(rgb, c)[:, :1]), ab_half.conv1(_cmc_input(rgb, c)[:, 1:])], 1
    ).detach()
    s = torch.tensor(std).view(1, 3, 1, 1)
    good = torch.nn.functional.conv2d(
        (rgb - torch.tensor(fold_pixel_mean(c)).view(1, 3, 1, 1)) / s, w, stride=2, padding=3
    )
    torch.testing.assert_close(good, ref, atol=1e-3, rtol=1e-4)
    bad = torch.nn.functional.conv2d(
        (rgb - torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)) / s, w, stride=2, padding=3
    )
    assert (bad - ref).abs().max() > 100 * (good - ref).abs().max()
