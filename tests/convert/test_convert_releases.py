"""Every public self-supervised ResNet release converts, exactly, with the method's own encoder.

For each release a fixture file is built in exactly its layout (``release_fixtures``), converted to torchvision and
mmdet, and compared with two independent references: torchvision's own ``load_state_dict`` of the backbone tensors
(which also says what ``num_batches_tracked`` must be for files without it), and the source network's C2-C5 stage
outputs. The file also holds a second, different network wherever the release has one (momentum encoder, student),
so taking the wrong encoder fails.
"""

from __future__ import annotations

import argparse
import os
import pickle
from functools import cache
from pathlib import Path

import pytest
import torch
import torchvision
from convert_helpers import random_resnet, tv_stages
from release_fixtures import FIXTURES, timm, torchvision_classic, trunk, without_num_batches_tracked

from mixbench.base.safe_load import UnsafeCheckpointError
from mixbench.commands import convert as cli
from mixbench.convert.api import convert_checkpoint
from mixbench.convert.catalog import LAYOUTS, RELEASES, layout_table
from mixbench.convert.errors import ConversionError

ROOT = Path(__file__).resolve().parents[2]
THIS = "tests/convert/test_convert_releases.py"
NO_NUM_BATCHES_TRACKED = {torchvision_classic, timm}
DEPTH = {"resnet18": 18, "resnet50": 50}


@cache
def nets(arch: str) -> tuple[torchvision.models.ResNet, torchvision.models.ResNet]:
    """The network to transfer and a different one (every other copy in a file)."""
    return random_resnet(arch, seed=0), random_resnet(arch, seed=1)


def torchvision_reference(net: torchvision.models.ResNet, arch: str, drop_nbt: bool) -> dict[str, torch.Tensor]:
    """What torchvision itself holds after loading the backbone tensors as the release stores them."""
    model = getattr(torchvision.models, arch)(weights=None)
    src = trunk(net)
    if drop_nbt:
        src = without_num_batches_tracked(src)
    result = model.load_state_dict(src, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and not result.unexpected_keys
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


def load_mmdet(path: Path, depth: int) -> torch.nn.Module:
    """mmdet's ResNet initialised as the transfer stage does it (PretrainedInit, strict=False)."""
    from mmdet.models.backbones import ResNet

    model = ResNet(depth=depth, style="pytorch", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    model.init_weights()
    model.eval()
    return model


def _assert_same(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype and torch.equal(got[k], ref[k]), k


def _id(release: str) -> str:
    return release.split(" (")[0].replace(" ", "_").replace("/", "")


def _row(release: str):
    return next(r for r in RELEASES if r.release == release)


@pytest.mark.parametrize("release", list(FIXTURES), ids=[_id(r) for r in FIXTURES])
def test_release_converts_exactly_to_torchvision_and_mmdet(release: str, tmp_path: Path) -> None:
    builder, arch = FIXTURES[release]
    net, other = nets(arch)
    src = tmp_path / "src.pth"
    torch.save(builder(net, other), src)
    expected = torchvision_reference(net, arch, builder in NO_NUM_BATCHES_TRACKED)
    x = torch.randn(1, 3, 48, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref_stages = tv_stages(net, x)

    rep = convert_checkpoint(src, tmp_path / "tv.pth", to="torchvision")
    assert rep.source_layout == _row(release).layout and rep.arch == arch
    tv = getattr(torchvision.models, arch)(weights=None).eval()
    result = tv.load_state_dict(torch.load(tmp_path / "tv.pth", weights_only=True), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
    _assert_same({k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}, expected)

    rep = convert_checkpoint(src, tmp_path / "mm.pth", to="mmdet")
    assert torch.load(tmp_path / "mm.pth", weights_only=True)["meta"]["mixbench_convert"]["source_layout"] == (
        _row(release).layout
    )
    mm = load_mmdet(tmp_path / "mm.pth", DEPTH[arch])
    _assert_same(dict(mm.state_dict()), expected)  # PretrainedInit only warns: compare every tensor it holds

    with torch.no_grad():
        tv_out, mm_out = tv_stages(tv, x), mm(x)
    assert len(mm_out) == 4
    for a, b, r in zip(tv_out, mm_out, ref_stages, strict=True):
        assert torch.equal(a, r) and torch.equal(b, r)  # exact: the same weights in the same ops


class _Payload:
    """Unpickling this writes a marker file: the proof that code from the checkpoint ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("release", list(FIXTURES), ids=[_id(r) for r in FIXTURES])
def test_pickled_code_is_refused_in_every_layout(release: str, tmp_path: Path) -> None:
    builder, _ = FIXTURES[release]
    marker = tmp_path / "pwned"
    obj = builder(*nets("resnet18"))  # the layout is what matters here, not the depth
    obj["extra"] = _Payload(marker)
    torch.save(obj, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match="evil.pth.*nothing from the file was run"):
        convert_checkpoint(tmp_path / "evil.pth", tmp_path / "out.pth", to="mmdet")
    assert not marker.exists() and not (tmp_path / "out.pth").exists()


def test_missing_num_batches_tracked_is_a_note_and_anything_else_still_fails(tmp_path: Path) -> None:
    net, _ = nets("resnet18")
    src = tmp_path / "classic.pth"
    torch.save(without_num_batches_tracked(net.state_dict()), src)
    rep = convert_checkpoint(src, tmp_path / "m.pth", to="mmdet")
    (note,) = [n for n in rep.notes if "num_batches_tracked" in n]
    assert note.startswith("20 BatchNorm num_batches_tracked buffers missing")  # resnet18 has 20 BatchNorms
    assert note in torch.load(tmp_path / "m.pth", weights_only=True)["meta"]["mixbench_convert"]["notes"]

    sd = without_num_batches_tracked(net.state_dict())
    del sd["layer2.1.bn2.running_var"]
    torch.save(sd, src)
    with pytest.raises(ConversionError, match=r"1 missing \['layer2.1.bn2.running_var'\]"):
        convert_checkpoint(src, tmp_path / "m2.pth", to="mmdet")
    sd = without_num_batches_tracked(net.state_dict())
    sd = {k: v for k, v in sd.items() if not k.startswith("layer1.0.bn1.")}  # a whole BatchNorm gone: not filled
    torch.save(sd, src)
    with pytest.raises(ConversionError, match=r"5 missing \['layer1.0.bn1.weight'"):
        convert_checkpoint(src, tmp_path / "m3.pth", to="mmdet")


def _refusal(tmp_path: Path, obj, **kw) -> str:
    torch.save(obj, tmp_path / "src.pth")
    with pytest.raises(ConversionError) as err:
        convert_checkpoint(tmp_path / "src.pth", tmp_path / "out.pth", to="mmdet", **kw)
    assert not (tmp_path / "out.pth").exists()
    return str(err.value)


def test_refusal_of_a_cifar_solo_learn_file_says_layout_structure_and_what_to_do(tmp_path: Path) -> None:
    """solo-learn's CIFAR runs replace conv1 by a 3x3 stride-1 conv (base.py); such a backbone cannot transfer."""
    net, other = nets("resnet18")
    obj = FIXTURES["solo-learn (Lightning .ckpt)"][0](net, other)
    obj["state_dict"]["backbone.conv1.weight"] = torch.randn(64, 3, 3, 3)
    msg = _refusal(tmp_path, obj)
    assert "1 misshaped ['conv1.weight: (64, 3, 3, 3) != (64, 3, 7, 7)']" in msg
    assert "assumed layout: solo-learn" in msg
    assert "top-level keys ['epoch', 'global_step', 'pytorch-lightning_version', 'state_dict'" in msg
    assert "stem backbone.conv1.weight (64, 3, 3, 3) = a CIFAR-style 3x3 stem" in msg
    assert "classifier.weight (100, 512)" in msg and "--layout NAME" in msg


def test_refusal_of_a_3_stage_cifar_resnet_with_a_linear_head(tmp_path: Path) -> None:
    """A kuangliu-style CIFAR ResNet: 3x3 stem, layer1-3, ``linear`` head; detected as torchvision, then refused."""
    sd = {"conv1.weight": torch.randn(16, 3, 3, 3), "bn1.weight": torch.ones(16)}
    for stage in (1, 2, 3):
        for block in range(3):
            sd[f"layer{stage}.{block}.conv1.weight"] = torch.randn(16, 16, 3, 3)
    sd["linear.weight"], sd["linear.bias"] = torch.randn(10, 64), torch.randn(10)
    msg = _refusal(tmp_path, {"net": sd, "acc": 93.0, "epoch": 199})
    assert "match no rename or drop rule" in msg and "linear.weight" in msg
    assert "assumed layout: torchvision (top-level conv1.weight/layerX.* keys)" in msg
    assert "top-level keys ['net', 'acc', 'epoch']" in msg
    assert "3 stages (layer1: 3 blocks, layer2: 3 blocks, layer3: 3 blocks) (a torchvision ResNet has 4)" in msg
    assert "head weights ['linear.weight (10, 64)']" in msg and "CIFAR-style 3x3 stem" in msg


def test_unknown_layout_and_forced_wrong_layout_explain_the_file(tmp_path: Path) -> None:
    vit = {"model": {"cls_token": torch.zeros(1, 1, 8), "patch_embed.proj.weight": torch.zeros(8, 3, 16, 16)}}
    msg = _refusal(tmp_path, vit)
    assert "not a ResNet checkpoint of any known layout" in msg and "top-level keys ['model']" in msg
    assert "--layout NAME" in msg and "patch_embed.proj.weight" in msg
    net, other = nets("resnet18")
    msg = _refusal(tmp_path, FIXTURES["VISSL (model_final_checkpoint_phase*.torch)"][0](net, other),
                   source="moco-v3")
    assert "assumed layout: moco-v3 (chosen with --layout)" in msg
    assert "tensors under 'classy_state_dict.base_model.model'" in msg and "trunk._feature_blocks.conv1" in msg


def test_detectron2_settings_printed_and_in_the_metadata(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Reference: MoCo's detectron2 configs (Base-RCNN-C4-BN.yaml) for its torchvision-style ResNet-50:
    INPUT.FORMAT RGB, PIXEL_MEAN [123.675, 116.280, 103.530], PIXEL_STD [58.395, 57.120, 57.375],
    STRIDE_IN_1X1 False; ResNet-18 additionally needs RES2_OUT_CHANNELS 64 in detectron2."""
    net, other = nets("resnet18")
    torch.save(FIXTURES["MoCo v1/v2 (moco_v2_800ep_pretrain.pth.tar)"][0](net, other), tmp_path / "m.pth")
    parser = argparse.ArgumentParser(prog="mixbench")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["convert", str(tmp_path / "m.pth"), "-o", str(tmp_path / "d2.pkl"),
                              "--to", "detectron2"])
    assert args.func(args) == 0
    with open(tmp_path / "d2.pkl", "rb") as f:
        meta = pickle.load(f)["meta"]["mixbench_convert"]  # our own file, written just now: safe to read here
    assert meta["detectron2_cfg"] == {
        "MODEL.RESNETS.DEPTH": 18,
        "MODEL.RESNETS.STRIDE_IN_1X1": False,
        "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
        "MODEL.PIXEL_STD": [58.395, 57.12, 57.375],
        "INPUT.FORMAT": "RGB",
        "MODEL.RESNETS.RES2_OUT_CHANNELS": 64,
    }
    out = capsys.readouterr().out
    assert "detectron2 settings these weights need" in out
    assert "  MODEL.RESNETS.STRIDE_IN_1X1 False" in out and "  INPUT.FORMAT RGB" in out


def test_stride_in_1x1_matters_for_a_resnet50(tmp_path: Path) -> None:
    """Why STRIDE_IN_1X1 False is printed: the same converted weights in a caffe-style ResNet (stride on the 1x1,
    detectron2's default) give other C3-C5 features; pytorch style (stride on the 3x3) reproduces the source."""
    from mmdet.models.backbones import ResNet

    net, _ = nets("resnet50")
    sd = trunk(net)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = tv_stages(net, x)
        outs = {}
        for style in ("pytorch", "caffe"):
            model = ResNet(depth=50, style=style)
            model.load_state_dict(sd, strict=True)
            model.eval()
            outs[style] = model(x)
    assert all(torch.equal(a, r) for a, r in zip(outs["pytorch"], ref, strict=True))
    assert torch.equal(outs["caffe"][0], ref[0])  # C2: no stride in layer1
    assert all((a - r).abs().max() > 1e-2 for a, r in zip(outs["caffe"][1:], ref[1:], strict=True))


def test_catalog_table_and_cli_agree_with_the_tests() -> None:
    fixture_rows = {r.release for r in RELEASES if r.tested == THIS}
    assert fixture_rows == set(FIXTURES)  # every release said to be tested here has a fixture, and only those
    for r in RELEASES:
        assert r.layout in LAYOUTS
        assert (ROOT / r.tested.split("::")[0]).is_file(), r.tested
    assert {r.layout for r in RELEASES} == set(LAYOUTS)  # every layout has a release that exercises it
    table = layout_table()
    for r in RELEASES:
        assert r.release in table and LAYOUTS[r.layout].encoder in table


def test_list_layouts_cli(capsys: pytest.CaptureFixture) -> None:
    from mixbench.cli import main

    assert main(["convert", "--list-layouts"]) == 0
    assert capsys.readouterr().out.strip() == layout_table().strip()
    assert main(["convert", "only_src.pth"]) == 2
    assert "--list-layouts" in capsys.readouterr().err
    parser = argparse.ArgumentParser(prog="mixbench")
    cli.register(parser.add_subparsers(dest="command", required=True))
    for flag in ("--layout", "--source"):  # --source: the flag's earlier name, kept working
        args = parser.parse_args(["convert", "a.pth", "-o", "b.pth", "--to", "mmdet", flag, "vissl"])
        assert args.source == "vissl"


def test_resnet50_release_to_detectron2_holds_the_base_encoder(tmp_path: Path) -> None:
    """MoCo v3's file holds two ResNet-50 (base and momentum encoder): the detectron2 pickle holds every tensor of
    the base one, exactly, under the names MoCo's convert-pretrain-to-detectron2.py gives them."""
    from test_convert_roundtrip import _moco_detectron2_name

    release = "MoCo v3 ResNet-50 (r-50-1000ep.pth.tar)"
    net, other = nets("resnet50")
    torch.save(FIXTURES[release][0](net, other), tmp_path / "v3.pth")
    rep = convert_checkpoint(tmp_path / "v3.pth", tmp_path / "d2.pkl", to="detectron2")
    assert (rep.source_layout, rep.arch) == (_row(release).layout, "resnet50")
    with open(tmp_path / "d2.pkl", "rb") as f:
        model = pickle.load(f)["model"]  # our own file, written just now: safe to read here
    ref = {_moco_detectron2_name(k): v.numpy() for k, v in trunk(net).items()}
    assert sorted(model) == sorted(ref)
    for k, v in ref.items():
        assert model[k].dtype == v.dtype and (model[k] == v).all(), k
