"""The transfer runner: checkpoint specs, config injection, the backbone-load check, skip/resume, and two real
tiny mmdet runs (a public-MoCo-layout file end to end through the CLI; an interrupted run that resumes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from mixbench.transfer.runner import (
    Checkpoint,
    TransferError,
    apply_data_root,
    backbone_mismatches,
    build_config,
    parse_checkpoint,
    run_transfer,
)

REPO = Path(__file__).resolve().parents[2]
DEMO_VOC = REPO / "configs/transfer/demo/faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py"
TINY = ["train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale=(128,96)",
        "train_dataloader.dataset.dataset.datasets.1.pipeline.2.scale=(128,96)",
        "test_dataloader.dataset.pipeline.1.scale=(128,96)",
        "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
        "test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False",
        "default_hooks.logger.interval=1"]


def _options(items: list[str]) -> dict:
    from mixbench.base.config import parse_cfg_options

    return parse_cfg_options(items)


def _torchvision_backbone(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    sd = getattr(torchvision.models, arch)().state_dict()
    return {k: v for k, v in sd.items() if not k.startswith("fc.")}


# ------------------------------------------------------------------------------------------ fixed inputs
def test_checkpoint_specs(tmp_path):
    assert parse_checkpoint("random").is_random
    f = tmp_path / "work" / "moco_run" / "epoch_200.pth"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"x")
    assert parse_checkpoint(str(f)).name == "moco_run_epoch_200"  # mmengine's epoch_N gets its run's name
    assert parse_checkpoint(f"mine={f}").name == "mine"
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        parse_checkpoint(str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="checkpoint name"):
        parse_checkpoint(f"a/b={f}")


def test_build_config_injects_checkpoint_statistics_root_and_bn(tmp_path):
    ck = Checkpoint(name="m", path=tmp_path / "src.pth", sha256="0" * 64, converted=tmp_path / "conv.pth",
                    meta={"pixel_mean": [1.0, 2.0, 3.0], "pixel_std": [4.0, 5.0, 6.0], "to_rgb": True})
    finetune = REPO / "configs/transfer/coco/mask-rcnn_r50_fpn_finetune-bn_1x_coco.py"
    cfg = build_config(finetune, ck, tmp_path / "wd", data_dir=tmp_path / "data")
    assert cfg.model.backbone.init_cfg == dict(type="Pretrained", checkpoint=str(tmp_path / "conv.pth"))
    assert cfg.model.data_preprocessor.mean == [1.0, 2.0, 3.0] and cfg.model.data_preprocessor.std == [4, 5, 6]
    assert cfg.model.backbone.norm_cfg.type == "BN"  # one process: SyncBN would not run
    assert cfg.mixbench_run["precision"] == "fp32" and cfg.optim_wrapper.type == "OptimWrapper"
    root = str(tmp_path / "data" / "coco") + "/"
    assert cfg.train_dataloader.dataset.data_root == root and cfg.test_dataloader.dataset.data_root == root
    assert cfg.test_evaluator.ann_file == root + "annotations/instances_val2017.json"
    rand = build_config(finetune, Checkpoint(name="random", path=None), tmp_path / "wd")
    assert rand.model.backbone.init_cfg is None and rand.data_root == "data/coco/"
    voc = build_config(DEMO_VOC, Checkpoint(name="random", path=None), tmp_path / "wd")
    apply_data_root(voc, "/x/VOCdevkit")
    assert {d.data_root for d in voc.train_dataloader.dataset.dataset.datasets} == {"/x/VOCdevkit/"}


def test_backbone_mismatches_finds_every_kind_of_wrong_key():
    from mmdet.models.backbones import ResNet

    bb = ResNet(depth=18, out_indices=(0, 1, 2, 3), style="pytorch")
    good = _torchvision_backbone("resnet18")
    bb.load_state_dict(good, strict=False)
    assert not any(backbone_mismatches(bb, good).values())
    changed = dict(good, **{"layer1.0.conv1.weight": good["layer1.0.conv1.weight"] + 1})
    assert backbone_mismatches(bb, changed)["value"] == ["layer1.0.conv1.weight"]
    r34 = backbone_mismatches(bb, _torchvision_backbone("resnet34"))
    assert r34["unexpected"] and not r34["missing"] and r34["value"]
    r50 = backbone_mismatches(bb, _torchvision_backbone("resnet50"))
    assert r50["shape"] and r50["unexpected"]


def test_finished_record_is_not_rerun(tmp_path, monkeypatch):
    from mmengine.runner import Runner

    from mixbench.transfer.records import SCHEMA, record_path, write_record

    rec = {"schema": SCHEMA, "status": "complete", "checkpoint": {"name": "random", "sha256": None},
           "config": {"name": DEMO_VOC.stem}, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
           "metrics": {"pascal_voc/AP50": 0.25}}
    write_record(record_path(tmp_path, DEMO_VOC.stem, "random"), rec)

    def refuse(*a, **k):
        raise AssertionError("a finished run was started again")

    monkeypatch.setattr(Runner, "from_cfg", refuse)
    out = run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), records_dir=tmp_path,
                       work_root=tmp_path / "wd")
    assert out["metrics"] == rec["metrics"]


# ------------------------------------------------------------------------------------------ real runs
@pytest.mark.slow
def test_wrong_backbone_file_stops_before_training(tmp_path, synthetic_root):
    src = tmp_path / "r34.pth"
    torch.save(_torchvision_backbone("resnet34"), src)  # a valid ResNet, but not the config's ResNet-18
    ck = parse_checkpoint(f"r34={src}")
    with pytest.raises(TransferError, match=r"did not load from .*unexpected \(e\.g\. layer1\.2\."):
        run_transfer(DEMO_VOC, ck, records_dir=tmp_path / "rec", work_root=tmp_path / "wd",
                     data_dir=synthetic_root["voc"].parent, cfg_options=_options(TINY))
    assert not list((tmp_path / "wd").rglob("epoch_*.pth"))  # not a single epoch trained
    assert not (tmp_path / "rec").exists()


def _public_moco_file(path: Path, arch: str = "resnet18") -> None:
    """A file laid out like facebookresearch/moco's main_moco.py saves it (DDP ``module.`` prefix, v2 MLP)."""
    torch.manual_seed(0)
    enc = getattr(torchvision.models, arch)(num_classes=128)
    dim = enc.fc.in_features
    enc.fc = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(), enc.fc)
    sd = {f"module.encoder_{e}.{k}": v for e in ("q", "k") for k, v in enc.state_dict().items()}
    sd["module.queue"] = torch.randn(128, 256)
    sd["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    torch.save({"epoch": 200, "arch": arch, "state_dict": sd, "optimizer": {"state": {}, "param_groups": []}}, path)


@pytest.mark.slow
def test_public_moco_layout_end_to_end_through_the_cli(tmp_path, synthetic_root, capsys):
    from mixbench.base.io import sha256_file
    from mixbench.cli import main

    src = tmp_path / "moco_layout.pth"
    _public_moco_file(src)
    argv = ["transfer", str(src), "--suite", "voc", "--bn", "frozen", "--data-root",
            str(synthetic_root["voc"].parent), "--records-dir", str(tmp_path / "rec"), "--work-root",
            str(tmp_path / "wd"), "--cfg-options", "train_dataloader.dataset.times=1", "train_cfg.max_epochs=1",
            "train_cfg.val_interval=2", "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False",
            # the paper's R50 config with an R18 backbone: the same code path at a fraction of the CPU time
            "model.backbone.depth=18", "model.neck.in_channels=[64,128,256,512]", *TINY, "--amp"]
    with pytest.warns(UserWarning, match="--amp ignored: no GPU"):
        assert main(argv) == 0
    (rec_file,) = (tmp_path / "rec").rglob("*.json")
    rec = json.loads(rec_file.read_text())
    from mixbench.transfer.ops_backend import backends

    assert rec["precision"]["precision"] == "fp32" and rec["precision"]["amp_requested"]  # CPU stays fp32
    assert rec["ops_backend"] == backends() and rec["ops_backend"]["nms/batched_nms"]["cpu"] == "mmcv"
    assert rec["checkpoint"]["name"] == "moco_layout" and rec["checkpoint"]["sha256"] == sha256_file(src)
    assert rec["config"]["name"] == "faster-rcnn_r50_fpn_frozen-bn_1x_voc0712"
    assert rec["config"]["settings"]["backbone"] == "R18" and rec["config"]["settings"]["train_scale"] == [128, 96]
    assert set(rec["metrics"]) >= {"pascal_voc/AP50", "pascal_voc/recall"}
    assert all(0.0 <= rec["metrics"][k] <= 1.0 for k in ("pascal_voc/AP50", "pascal_voc/recall"))
    assert rec["world_size"] == 1 and rec["packages"]["mmdet"] == "3.3.0" and rec["wall_time_s"] > 0
    # A second call finds the record and trains nothing.
    capsys.readouterr()
    assert main(argv) == 0
    assert "skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_classic_torchvision_file_without_num_batches_tracked_transfers_with_a_note(tmp_path, synthetic_root):
    """torchvision's classic releases (resnet50-19c8e357.pth) predate BatchNorm's num_batches_tracked: the
    converter fills them (issue 10) and the run record says so."""
    from mixbench.cli import main

    torch.manual_seed(0)
    sd = {k: v for k, v in torchvision.models.resnet50().state_dict().items() if not k.endswith("num_batches_tracked")}
    src = tmp_path / "resnet50-classic.pth"
    torch.save(sd, src)
    argv = ["transfer", str(src), "--suite", "voc", "--bn", "frozen", "--data-root",
            str(synthetic_root["voc"].parent), "--records-dir", str(tmp_path / "rec"), "--work-root",
            str(tmp_path / "wd"), "--cfg-options", "train_dataloader.dataset.times=1", "train_cfg.max_epochs=1",
            "train_cfg.val_interval=2", "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False",
            *TINY]
    assert main(argv) == 0
    (rec_file,) = (tmp_path / "rec").rglob("*.json")
    rec = json.loads(rec_file.read_text())
    assert rec["checkpoint"]["convert_meta"]["source_layout"] == "torchvision"
    (note,) = [n for n in rec["checkpoint"]["conversion_notes"] if "num_batches_tracked" in n]
    assert note.startswith("53 BatchNorm num_batches_tracked buffers missing")  # ResNet-50 has 53 BatchNorms
    assert set(rec["metrics"]) >= {"pascal_voc/AP50", "pascal_voc/recall"}


class _Killed(Exception):
    pass


def _register_test_hooks():
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    @HOOKS.register_module(name="_MixbenchKillAfterEpoch", force=True)
    class KillAfterEpoch(Hook):
        priority = "LOWEST"  # after CheckpointHook saved the epoch

        def after_train_epoch(self, runner) -> None:
            raise _Killed(f"killed after epoch {runner.epoch}")

    @HOOKS.register_module(name="_MixbenchStartEpoch", force=True)
    class StartEpoch(Hook):
        seen: list[int] = []

        def before_train(self, runner) -> None:
            StartEpoch.seen.append(runner.epoch)

    return StartEpoch


@pytest.mark.slow
def test_killed_run_resumes_and_finished_run_is_skipped(tmp_path, synthetic_root, capsys):
    start = _register_test_hooks()
    kw = dict(records_dir=tmp_path / "rec", work_root=tmp_path / "wd", data_dir=synthetic_root["voc"].parent)
    opts = _options([*TINY, "train_cfg.max_epochs=2"])
    with pytest.raises(_Killed):
        run_transfer(DEMO_VOC, Checkpoint(name="random", path=None),
                     cfg_options={**opts, "custom_hooks": [dict(type="_MixbenchKillAfterEpoch")]}, **kw)
    work = tmp_path / "wd" / DEMO_VOC.stem / "random"
    assert (work / "epoch_1.pth").is_file() and not (tmp_path / "rec").exists()
    rec = run_transfer(DEMO_VOC, Checkpoint(name="random", path=None),
                       cfg_options={**opts, "custom_hooks": [dict(type="_MixbenchStartEpoch")]}, **kw)
    assert start.seen == [1]  # resumed after the first epoch, not from scratch
    assert (work / "epoch_2.pth").is_file() and rec["status"] == "complete"
    assert rec["config"]["settings"]["epochs"] == 2
