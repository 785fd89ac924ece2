"""Bad inputs fail loudly with a message naming the file and the problem; nothing is written on failure."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import torchvision
from convert_helpers import random_resnet

from mixbench.commands import convert as cli
from mixbench.convert.api import ARCH_DEPTHS, convert_checkpoint, expected_backbone_keys, infer_arch
from mixbench.convert.errors import ConversionError
from mixbench.convert.sources import LAYOUTS


@pytest.fixture(scope="module")
def r18_sd() -> dict[str, torch.Tensor]:
    return random_resnet("resnet18", seed=0).state_dict()


def _convert_fails(tmp_path: Path, obj, match: str, **kw) -> ConversionError:
    src = tmp_path / "src.pth"
    torch.save(obj, src)
    out = tmp_path / "out.pth"
    with pytest.raises(ConversionError, match=match) as err:
        convert_checkpoint(src, out, to=kw.pop("to", "mmdet"), **kw)
    assert not out.exists()
    return err.value


def test_unknown_file_names_expected_and_first_keys(tmp_path: Path) -> None:
    vgg = {"features.0.weight": torch.zeros(64, 3, 3, 3), "classifier.0.weight": torch.zeros(10, 10)}
    err = _convert_fails(tmp_path, vgg, "not a ResNet checkpoint")
    assert (
        "features.0.weight" in str(err)
        and "expected a ResNet checkpoint" in str(err)
        and "src.pth" in str(err)
    )
    _convert_fails(tmp_path, [1, 2, 3], "not a dict of tensors")
    _convert_fails(tmp_path, {"meta": {"a": 1}}, "no tensors")


def test_wrong_arch(tmp_path: Path, r18_sd) -> None:
    err = _convert_fails(tmp_path, r18_sd, "resnet50", arch="resnet50")
    assert "resnet18" in str(err)
    # metadata claiming the wrong arch is caught by the exact key check
    moco = {
        "state_dict": {f"encoder_q.{k}": v for k, v in r18_sd.items()},
        "meta": {"mixbench": {"method": "moco", "arch": "resnet34"}},
    }
    err = _convert_fails(tmp_path, moco, "does not match torchvision's resnet34")
    assert "look like resnet18" in str(err)


def test_missing_extra_misshaped(tmp_path: Path, r18_sd) -> None:
    sd = dict(r18_sd)
    del sd["layer1.0.bn1.running_var"]
    _convert_fails(tmp_path, sd, r"1 missing \['layer1.0.bn1.running_var'\]")
    sd = {**r18_sd, "layer2.0.downsample.1.weight2": torch.zeros(3)}
    _convert_fails(tmp_path, sd, "match no rename or drop rule.*layer2.0.downsample.1.weight2")
    sd = {**r18_sd, "layer1.0.downsample.0.weight": torch.zeros(64, 64, 1, 1)}  # a shortcut resnet18 lacks
    _convert_fails(tmp_path, sd, r"1 extra \['layer1.0.downsample.0.weight'\]", arch="resnet18")
    sd = {**r18_sd, "conv1.weight": torch.zeros(64, 3, 5, 5)}
    _convert_fails(tmp_path, sd, r"1 misshaped \['conv1.weight: \(64, 3, 5, 5\) != \(64, 3, 7, 7\)'\]")
    moco = {
        "state_dict": {
            **{f"encoder_q.{k}": v for k, v in r18_sd.items()},
            "encoder_q.extra.bias": torch.zeros(1),
        }
    }
    _convert_fails(tmp_path, moco, "encoder_q.extra.bias")


def test_official_cmc_layout_is_refused_with_reason(tmp_path: Path, r18_sd) -> None:
    sd = {
        **{f"encoder.module.l_to_ab.{k}": v for k, v in r18_sd.items()},
        **{f"encoder.module.ab_to_l.{k}": v for k, v in r18_sd.items()},
    }
    _convert_fails(tmp_path, {"model": sd, "epoch": 1}, "official CMC release.*64-channel stem")


def test_bad_target_and_arch_names(tmp_path: Path, r18_sd) -> None:
    _convert_fails(tmp_path, r18_sd, "unknown target", to="onnx")
    _convert_fails(tmp_path, r18_sd, "unknown arch", arch="vgg16")
    _convert_fails(
        tmp_path,
        r18_sd,
        r"detectron2 reads model-zoo pickles only from files ending in \.pkl",
        to="detectron2",
    )
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        convert_checkpoint(tmp_path / "nope.pth", tmp_path / "o.pth", to="mmdet")


@pytest.mark.parametrize("arch", list(ARCH_DEPTHS))
def test_expected_keys_match_torchvision(arch: str) -> None:
    """Reference: a real torchvision model's state_dict (fc removed)."""
    torch.manual_seed(0)
    sd = getattr(torchvision.models, arch)(weights=None).state_dict()
    ref = {k: v.shape for k, v in sd.items() if not k.startswith("fc.")}
    assert expected_backbone_keys(arch) == ref
    assert infer_arch(ref) == arch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mixbench")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_choices_agree_with_the_package() -> None:
    assert set(cli.SOURCE_CHOICES) == {"auto", *LAYOUTS}
    assert set(cli.ARCH_CHOICES) == set(ARCH_DEPTHS)


def test_cli_success_and_failure(tmp_path: Path, r18_sd, capsys: pytest.CaptureFixture) -> None:
    torch.save({"state_dict": {f"module.encoder_q.{k}": v for k, v in r18_sd.items()}}, tmp_path / "m.pth")
    args = _parser().parse_args(
        ["convert", str(tmp_path / "m.pth"), "-o", str(tmp_path / "o.pth"), "--to", "mmdet", "--verbose"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "source layout: moco-public" in out and "arch: resnet18" in out
    assert "encoder_q" in out and "module.encoder_q.layer1.0.conv1.weight -> layer1.0.conv1.weight" in out
    assert "module.encoder_q.fc.weight -> (dropped: drop_head_q)" in out and "elapsed:" in out

    args = _parser().parse_args(
        [
            "convert",
            str(tmp_path / "m.pth"),
            "-o",
            str(tmp_path / "x.pth"),
            "--to",
            "mmdet",
            "--arch",
            "resnet50",
        ]
    )
    assert args.func(args) == 2
    captured = capsys.readouterr()
    assert "mixbench convert: error:" in captured.err and "resnet18" in captured.err
    assert not (tmp_path / "x.pth").exists()


def test_forced_source_layout(tmp_path: Path, r18_sd) -> None:
    """--layout (alias --source) skips detection, not the checks: a torchvision file read as mmselfsup fails."""
    _convert_fails(tmp_path, r18_sd, "match no rename or drop rule", source="mmselfsup")
    _convert_fails(tmp_path, r18_sd, "official CMC release", source="cmc-official")
    _convert_fails(tmp_path, r18_sd, "unknown source layout", source="caffe2")
    rep = convert_checkpoint(tmp_path / "src.pth", tmp_path / "ok.pth", to="mmdet", source="torchvision")
    assert rep.layout_reason == "chosen with --layout" and rep.arch == "resnet18"
