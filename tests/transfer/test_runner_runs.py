"""The transfer runner against real backbones and real tiny mmdet runs: the backbone-load check, a public-MoCo-layout
file end to end through the CLI, a classic torchvision file, an interrupted run that resumes, and a re-pretrained
file under a reused name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from tiny_voc import DEMO_VOC, PAPER_AT_TINY_SCALE, TINY_VOC

from mixbench.transfer.checkpoint import Checkpoint, TransferError, backbone_mismatches, parse_checkpoint
from mixbench.transfer.runner import run_transfer

TINY = [*TINY_VOC, "default_hooks.logger.interval=1"]
PAPER_TINY = [*PAPER_AT_TINY_SCALE, "default_hooks.logger.interval=1"]


def _options(items: list[str]) -> dict:
    from mixbench.base.config import parse_cfg_options

    return parse_cfg_options(items)


def _torchvision_backbone(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    sd = getattr(torchvision.models, arch)().state_dict()
    return {k: v for k, v in sd.items() if not k.startswith("fc.")}


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
            # The paper config's lr 0.01 is for 8 GPUs x 2 images; one process x 2 takes 1/8 of it (linear scaling).
            # At 0.01 the loss reaches 1e7 after one step and NaN by iteration 3-5, and the finite-loss check stops
            # the run (a NaN model's AP would still lie in [0, 1]).
            "optim_wrapper.optimizer.lr=0.00125",
            "train_cfg.val_interval=2", "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False",
            *PAPER_TINY, "--amp"]
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
    """torchvision's classic releases (resnet18-5c106cde.pth, resnet50-19c8e357.pth) predate BatchNorm's
    num_batches_tracked: the converter fills them and the run record says so. ResNet-18 through the
    paper's VOC config (depth overridden): the same code path at a fraction of R50's CPU time."""
    from mixbench.cli import main

    torch.manual_seed(0)
    sd = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.endswith("num_batches_tracked")}
    src = tmp_path / "resnet18-classic.pth"
    torch.save(sd, src)
    argv = ["transfer", str(src), "--suite", "voc", "--bn", "frozen", "--data-root",
            str(synthetic_root["voc"].parent), "--records-dir", str(tmp_path / "rec"), "--work-root",
            str(tmp_path / "wd"), "--cfg-options", "train_dataloader.dataset.times=1", "train_cfg.max_epochs=1",
            "train_cfg.val_interval=2", "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False",
            "optim_wrapper.optimizer.lr=0.00125", *PAPER_TINY]  # the paper's lr 0.01 x 2 / 16 images
    assert main(argv) == 0
    (rec_file,) = (tmp_path / "rec").rglob("*.json")
    rec = json.loads(rec_file.read_text())
    assert rec["checkpoint"]["convert_meta"]["source_layout"] == "torchvision"
    (note,) = [n for n in rec["checkpoint"]["conversion_notes"] if "num_batches_tracked" in n]
    assert note.startswith("20 BatchNorm num_batches_tracked buffers missing")  # ResNet-18 has 20 BatchNorms
    assert set(rec["metrics"]) >= {"pascal_voc/AP50", "pascal_voc/recall"}


class _Killed(Exception):
    pass


def _register_test_hooks():
    """One hook for both runs (a changed custom_hooks list would change the run key): it records the epoch each
    run starts at and, while ``kill`` is set, dies after the first epoch was saved."""
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS

    @HOOKS.register_module(name="_MixbenchKillAndWatch", force=True)
    class KillAndWatch(Hook):
        priority = "LOWEST"  # after CheckpointHook saved the epoch
        seen: list[int] = []
        kill = True

        def before_train(self, runner) -> None:
            KillAndWatch.seen.append(runner.epoch)

        def after_train_epoch(self, runner) -> None:
            if KillAndWatch.kill:
                raise _Killed(f"killed after epoch {runner.epoch}")

    return KillAndWatch


@pytest.mark.slow
def test_killed_run_resumes_and_finished_run_is_skipped(tmp_path, synthetic_root, capsys):
    watch = _register_test_hooks()
    kw = dict(records_dir=tmp_path / "rec", work_root=tmp_path / "wd", data_dir=synthetic_root["voc"].parent)
    opts = {**_options([*TINY, "train_cfg.max_epochs=2"]), "+custom_hooks": [dict(type="_MixbenchKillAndWatch")]}
    with pytest.raises(_Killed):
        run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), cfg_options=opts, **kw)
    (work,) = (tmp_path / "wd" / DEMO_VOC.stem / "random").iterdir()  # one folder: this run key
    assert (work / "epoch_1.pth").is_file() and not (tmp_path / "rec").exists()
    watch.kill = False
    rec = run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), cfg_options=opts, **kw)
    assert watch.seen == [0, 1]  # resumed after the first epoch, not from scratch
    assert (work / "epoch_2.pth").is_file() and rec["status"] == "complete"
    assert rec["config"]["settings"]["epochs"] == 2 and rec["run_key_id"] == work.name
    assert json.loads((work / "run_key.json").read_text()) == rec["run_key"]


@pytest.mark.slow
def test_same_name_other_file_trains_fresh_and_records_its_own_numbers(tmp_path, synthetic_root):
    """B (same name as A, other bytes) must neither resume A's detector nor write A's AP under B's sha256."""
    from mixbench.base.io import sha256_file
    from mixbench.base.safe_load import safe_torch_load

    watch = _register_test_hooks()
    watch.kill, watch.seen = False, []
    kw = dict(records_dir=tmp_path / "rec", work_root=tmp_path / "wd", data_dir=synthetic_root["voc"].parent,
              cfg_options={**_options([*TINY, "train_cfg.max_epochs=1"]),
                           "+custom_hooks": [dict(type="_MixbenchKillAndWatch")]})
    f = tmp_path / "ck.pth"
    torch.save(_torchvision_backbone("resnet18"), f)
    rec_a = run_transfer(DEMO_VOC, parse_checkpoint(f"moco={f}"), **kw)
    sd = _torchvision_backbone("resnet18")
    sd["conv1.weight"] = sd["conv1.weight"] * 0.5  # re-pretrained: same name, other weights
    torch.save(sd, f)
    rec_b = run_transfer(DEMO_VOC, parse_checkpoint(f"moco={f}"), **kw)
    assert watch.seen == [0, 0]  # B started from epoch 0: nothing of A's run was resumed
    assert rec_b["checkpoint"]["sha256"] == sha256_file(f) != rec_a["checkpoint"]["sha256"]
    assert rec_b["work_dir"] != rec_a["work_dir"]
    # B's fine-tuned detector started from B's weights (one short epoch moves them little), not from A's (2x)
    det = safe_torch_load(Path(rec_b["work_dir"]) / "epoch_1.pth")["state_dict"]["backbone.conv1.weight"]
    b_init = sd["conv1.weight"]
    assert (det - b_init).norm() < 0.1 * b_init.norm() < (det - 2 * b_init).norm()


@pytest.mark.slow
def test_seeds_run_in_one_process_record_what_a_fresh_process_records(tmp_path, synthetic_root):
    """`transfer --seeds 0 1` in one process (as a pipeline job with several seeds runs them) and `--seed 1` in a
    process of its own give seed 1 the same metrics: nothing a first run leaves in the process changes the next."""
    import subprocess
    import sys

    from mixbench.cli import main

    data = str(synthetic_root["voc"].parent)
    common = ["transfer", "random", "--config", str(DEMO_VOC), "--data-root", data, "--cfg-options",
              *TINY, "train_cfg.max_epochs=1", "train_dataloader.dataset.times=1"]

    def dirs(name: str) -> list[str]:
        return ["--records-dir", str(tmp_path / name / "rec"), "--work-root", str(tmp_path / name / "wd")]

    cut = common.index("--cfg-options")
    assert main([*common[:cut], "--seeds", "0", "1", *dirs("one"), *common[cut:]]) == 0
    env = dict(__import__("os").environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    subprocess.run([sys.executable, "-m", "mixbench.cli", *common[:cut], "--seed", "1", *dirs("fresh"),
                    *common[cut:]], check=True, env=env, capture_output=True)

    def trained(name: str) -> dict[int, dict[str, torch.Tensor]]:
        """seed -> the detector's trained weights (the tiny runs' metrics are all 0, so weights are compared)."""
        from mixbench.base.safe_load import safe_torch_load

        out = {}
        for path in (tmp_path / name / "rec").rglob("*.json"):
            record = json.loads(path.read_text())
            out[record["seed"]] = safe_torch_load(Path(record["work_dir"]) / "epoch_1.pth")["state_dict"]
        return out

    one, fresh = trained("one"), trained("fresh")
    assert sorted(one) == [0, 1] and list(fresh) == [1]
    assert one[1].keys() == fresh[1].keys()
    assert all(torch.equal(one[1][k], fresh[1][k]) for k in one[1])
    assert not all(torch.equal(one[0][k], one[1][k]) for k in one[1])  # the seed does change the run
