"""Round trip: random ResNet-50 -> each source layout -> converted -> torchvision and mmdet ResNet.

Reference: the original torchvision model. Every parameter and buffer must come back bit-identical, and the
four stage outputs of torchvision's and mmdet's models must agree on the same input.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from convert_helpers import random_resnet, resnet50_meta, tv_stages

from mixbench.convert.api import convert_checkpoint, expected_backbone_keys
from mixbench.convert.sources import sidecar_meta_path

MOCO_META = resnet50_meta(
    "moco", pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375], color=None,
    mixture={"kind": "region", "n": 5}, moco={"dim": 128, "K": 65536, "m": 0.999, "T": 0.2, "mlp": True},
    config_name="moco_v2_r50",
)


@pytest.fixture(scope="module")
def ref() -> torchvision.models.ResNet:
    return random_resnet("resnet50", seed=0)


def _perturbed(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A different copy (momentum encoder / duplicate): picking it by mistake would fail the comparison."""
    return {k: (v + 1 if v.is_floating_point() else v + 1) for k, v in sd.items()}


def save_source(layout: str, model: torchvision.models.ResNet, path: Path) -> Path:
    """Save ``model`` the way each source writes its checkpoints (heads, EMA copies and queues included)."""
    sd = model.state_dict()
    # MoCo v2 MLP head (fc.0/fc.2; hidden width shrunk from 2048 to keep the files small)
    mlp = {
        "fc.0.weight": torch.randn(256, 2048),
        "fc.0.bias": torch.randn(256),
        "fc.2.weight": torch.randn(128, 256),
        "fc.2.bias": torch.randn(128),
    }
    trunk = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    if layout == "torchvision":
        obj = sd  # torchvision model zoo: flat, with fc
    elif layout == "torchvision-wrapped":
        obj = {"epoch": 90, "model": {f"module.{k}": v for k, v in sd.items()}}  # supervised DDP script
    elif layout == "mixbench-moco":
        model_sd = {
            **{f"encoder_q.{k}": v for k, v in {**trunk, **mlp}.items()},
            **{f"encoder_k.{k}": v for k, v in _perturbed({**trunk, **mlp}).items()},
            "queue": torch.randn(128, 64),
            "queue_ptr": torch.zeros(1, dtype=torch.long),
        }
        obj = {"state_dict": model_sd, "meta": {"mixbench": MOCO_META, "epoch": 2}, "message_hub": {}}
    elif layout == "moco-public":
        model_sd = {
            **{f"module.encoder_q.{k}": v for k, v in {**trunk, **mlp}.items()},
            **{f"module.encoder_k.{k}": v for k, v in _perturbed({**trunk, **mlp}).items()},
            "module.queue": torch.randn(128, 64),
            "module.queue_ptr": torch.zeros(1, dtype=torch.long),
        }
        obj = {"epoch": 200, "arch": "resnet50", "state_dict": model_sd, "optimizer": {"state": {}}}
    elif layout == "mmselfsup":
        model_sd = {
            **{f"backbone.{k}": v for k, v in trunk.items()},
            "neck.mlp.0.weight": torch.randn(256, 2048),
            "neck.mlp.2.weight": torch.randn(128, 256),
            **{f"momentum_encoder.module.0.{k}": v for k, v in _perturbed(trunk).items()},
            "momentum_encoder.steps": torch.tensor(5),
            "queue": torch.randn(128, 64),
            "queue_ptr": torch.zeros(1, dtype=torch.long),
            "data_preprocessor.mean": torch.zeros(3, 1, 1),
        }
        obj = {"meta": {"epoch": 200}, "state_dict": model_sd}
    else:
        raise ValueError(layout)
    torch.save(obj, path)
    return path


LAYOUTS = {  # how each source is saved -> the layout the converter must report
    "torchvision": "torchvision",
    "mixbench-moco": "mixbench-moco",
    "moco-public": "moco-public",
    "mmselfsup": "mmselfsup",
}


def _assert_same_tensors(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(ref)
    for k in ref:
        assert got[k].shape == ref[k].shape and torch.equal(got[k], ref[k]), k


def load_mmdet(path: Path) -> torch.nn.Module:
    """mmdet's ResNet-50 initialised the way the transfer stage does it (PretrainedInit, strict=False)."""
    from mmdet.models.backbones import ResNet

    model = ResNet(depth=50, style="pytorch", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    model.init_weights()
    model.eval()  # mmdet's ResNet.train() returns None, so no chaining
    return model


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_round_trip_torchvision_and_mmdet(
    layout: str, ref: torchvision.models.ResNet, tmp_path: Path
) -> None:
    src = save_source(layout, ref, tmp_path / f"{layout}.pth")
    ref_sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    x = torch.randn(1, 3, 40, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref_stages = tv_stages(ref, x)

    # torchvision target: strict apart from fc
    rep = convert_checkpoint(src, tmp_path / "tv.pth", to="torchvision")
    assert rep.source_layout == LAYOUTS[layout] and rep.arch == "resnet50" and rep.n_tensors == len(ref_sd)
    tv = torchvision.models.resnet50(weights=None).eval()
    result = tv.load_state_dict(torch.load(tmp_path / "tv.pth", weights_only=True), strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
    _assert_same_tensors({k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}, ref_sd)

    # mmdet target: PretrainedInit only warns about missing keys, so compare EVERY tensor of the built model
    rep = convert_checkpoint(src, tmp_path / "mmdet.pth", to="mmdet")
    assert rep.source_layout == LAYOUTS[layout]
    saved = torch.load(tmp_path / "mmdet.pth", weights_only=True)
    assert saved["meta"]["mixbench_convert"]["source_layout"] == LAYOUTS[layout]
    mm = load_mmdet(tmp_path / "mmdet.pth")
    _assert_same_tensors(dict(mm.state_dict()), ref_sd)

    with torch.no_grad():
        tv_out, mm_out = tv_stages(tv, x), mm(x)
    assert len(mm_out) == 4
    for a, b, r in zip(tv_out, mm_out, ref_stages):
        assert a.shape == b.shape == r.shape
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
        torch.testing.assert_close(a, r, atol=1e-5, rtol=0)


def test_wrapped_torchvision_checkpoint(ref: torchvision.models.ResNet, tmp_path: Path) -> None:
    """{'model': {'module.conv1.weight', ...}} (a DDP training script): the plain layout's rules plus
    strip_module; the mmdet round trip of the plain layout is above."""
    src = save_source("torchvision-wrapped", ref, tmp_path / "wrapped.pth")
    rep = convert_checkpoint(src, tmp_path / "m.pth", to="mmdet")
    assert rep.source_layout == "torchvision" and rep.rule_counts == {"strip_module": 318, "drop_fc": 2}
    ref_sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    _assert_same_tensors(torch.load(tmp_path / "m.pth", weights_only=True)["state_dict"], ref_sd)


def test_moco_meta_travels(ref: torchvision.models.ResNet, tmp_path: Path) -> None:
    src = save_source("mixbench-moco", ref, tmp_path / "moco.pth")
    rep = convert_checkpoint(src, tmp_path / "m.pth", to="mmdet")
    meta = torch.load(tmp_path / "m.pth", weights_only=True)["meta"]["mixbench_convert"]
    assert meta["mixbench"] == MOCO_META and meta["pixel_mean"] == MOCO_META["pixel_mean"]
    assert meta["depth"] == 50 and meta["to_rgb"] is True and meta["arch"] == "resnet50"
    assert rep.rule_counts == {"encoder_q": 318, "drop_head_q": 4, "drop_encoder_k": 322, "drop_queue": 2}


def test_idempotent_reconversion(ref: torchvision.models.ResNet, tmp_path: Path) -> None:
    src = save_source("mixbench-moco", ref, tmp_path / "moco.pth")
    convert_checkpoint(src, tmp_path / "a_mmdet.pth", to="mmdet")
    convert_checkpoint(src, tmp_path / "a_tv.pth", to="torchvision")
    first = torch.load(tmp_path / "a_mmdet.pth", weights_only=True)
    for from_file, layout in (("a_mmdet.pth", "mixbench-mmdet"), ("a_tv.pth", "torchvision")):
        for to in ("mmdet", "torchvision"):
            out = tmp_path / f"again_{layout}_{to}.pth"
            rep = convert_checkpoint(tmp_path / from_file, out, to=to)
            assert rep.source_layout == layout
            again = torch.load(out, weights_only=True)
            sd = again["state_dict"] if to == "mmdet" else again
            _assert_same_tensors(sd, first["state_dict"])
            # what the transfer stage needs survives a second conversion
            assert rep.meta.pixel_mean == MOCO_META["pixel_mean"] and rep.meta.mixbench.to_dict() == MOCO_META
            assert rep.meta.previous["source_layout"] == "mixbench-moco"
    assert sidecar_meta_path(tmp_path / "a_tv.pth").is_file()


def _moco_detectron2_name(k: str) -> str:
    """Independent re-implementation of MoCo's convert-pretrain-to-detectron2.py str.replace chain."""
    if "layer" not in k:
        k = "stem." + k
    for t in [1, 2, 3, 4]:
        k = k.replace(f"layer{t}", f"res{t + 1}")
    for t in [1, 2, 3]:
        k = k.replace(f"bn{t}", f"conv{t}.norm")
    k = k.replace("downsample.0", "shortcut")
    return k.replace("downsample.1", "shortcut.norm")


def test_detectron2_output(ref: torchvision.models.ResNet, tmp_path: Path) -> None:
    src = save_source("moco-public", ref, tmp_path / "moco.pth")
    rep = convert_checkpoint(src, tmp_path / "d2.pkl", to="detectron2")
    with open(tmp_path / "d2.pkl", "rb") as f:
        obj = pickle.load(f)  # our own file, written by this test: reading it here is safe
    assert obj["__author__"] == "mixbench" and obj["matching_heuristics"] is True
    assert obj["meta"]["mixbench_convert"]["source_sha256"] == rep.meta.source_sha256
    model = obj["model"]
    ref_sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    assert sorted(model) == sorted(_moco_detectron2_name(k) for k in ref_sd)
    # a few names checked by hand against the MoCo converter's rules
    for old, new in [
        ("conv1.weight", "stem.conv1.weight"),
        ("bn1.running_var", "stem.conv1.norm.running_var"),
        ("layer1.0.downsample.0.weight", "res2.0.shortcut.weight"),
        ("layer1.0.downsample.1.bias", "res2.0.shortcut.norm.bias"),
        ("layer3.5.conv2.weight", "res4.5.conv2.weight"),
        ("layer4.2.bn3.weight", "res5.2.conv3.norm.weight"),
    ]:
        assert type(model[new]).__module__ == "numpy"
        assert model[new].shape == tuple(ref_sd[old].shape)
        assert (model[new] == ref_sd[old].numpy()).all()
    assert len(model) == len(expected_backbone_keys("resnet50")) == 318
