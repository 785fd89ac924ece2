"""The transfer runner without real training: checkpoint specs, config injection, run keys, skip and resume by key,
work dir locks, records keyed by run key, and runs that measured nothing (real runs: test_runner_runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mixbench.base.checkpoint_meta import ConvertMeta
from mixbench.transfer.checkpoint import Checkpoint, TransferError, parse_checkpoint
from mixbench.transfer.config import apply_data_root, build_config
from mixbench.transfer.runner import run_transfer

REPO = Path(__file__).resolve().parents[2]
DEMO_VOC = REPO / "configs/transfer/demo/faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py"


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
                    meta=ConvertMeta(source_sha256="0" * 64, source_file="src.pth", source_layout="torchvision",
                                     arch="resnet50", depth=50, pixel_mean=[1.0, 2.0, 3.0], pixel_std=[4.0, 5.0, 6.0]))
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


@pytest.mark.parametrize("bn_mode", ["frozen", "finetune"])
def test_random_init_backbone_keeps_its_residual_branches_alive_under_frozen_bn(tmp_path, bn_mode):
    # mmdet zero-initialises the last BN weight of each residual block; frozen, that weight would stay 0 for good
    # and the random-init row would be a stem plus 1x1 shortcuts. Reference: the BN weights mmdet builds.
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    from mixbench.transfer.runner import init_description

    register_all_modules()
    config = REPO / f"configs/transfer/demo/retinanet_r18_fpn_{bn_mode}-bn_demo_coco.py"
    cfg = build_config(config, Checkpoint(name="random", path=None), tmp_path / "wd")
    assert init_description(cfg, Checkpoint(name="random", path=None)) == (
        "random (mmdet's Kaiming init, zero_init_residual off)" if bn_mode == "frozen"
        else "random (mmdet's Kaiming init)")
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    last_bn = [block.norm2.weight for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
               for block in layer]
    if bn_mode == "frozen":
        assert all(not w.requires_grad and torch.all(w == 1) for w in last_bn)
    else:  # trainable BN can leave zero: mmdet's zero-init residual stays as it is
        assert all(w.requires_grad and torch.all(w == 0) for w in last_bn)
    block = backbone.layer3[1].eval()
    branch = block.norm2(block.conv2(block.relu(block.norm1(block.conv1(torch.ones(1, 256, 4, 4))))))
    assert (branch.abs().sum() > 0) == (bn_mode == "frozen")


def _random_key(tmp_path, **kw) -> dict:
    from mixbench.transfer.runner import run_key

    ck = Checkpoint(name="random", path=None)
    args = dict(data_dir=tmp_path / "data", cfg_options=None, seed=0, world_size=1)
    args.update(kw)
    cfg = build_config(DEMO_VOC, ck, tmp_path / "wd", data_dir=args["data_dir"], cfg_options=args["cfg_options"],
                       world_size=args["world_size"], seed=args["seed"])
    return run_key(cfg, DEMO_VOC, ck, args["seed"], args["world_size"])


def test_run_key_changes_with_every_setting_that_decides_the_result(tmp_path):
    from mixbench.transfer.runner import work_dir_for

    base = _random_key(tmp_path)
    assert base == _random_key(tmp_path)  # deterministic: same inputs, same key
    assert base["data_root"] == str(tmp_path / "data" / "VOCdevkit") and base["seed"] == 0
    changed = [
        _random_key(tmp_path, cfg_options={"optim_wrapper.optimizer.lr": 0.05}),
        _random_key(tmp_path, cfg_options={"train_cfg.max_epochs": 3}),
        _random_key(tmp_path, data_dir=tmp_path / "other"),
        _random_key(tmp_path, seed=1),
        _random_key(tmp_path, world_size=2),
    ]
    assert all(k != base for k in changed)
    dirs = {work_dir_for(DEMO_VOC, "random", tmp_path, k) for k in [base, *changed]}
    assert len(dirs) == 6  # one work dir per key: none resumes another's checkpoints
    # where and how a run logs is not part of the key
    assert _random_key(tmp_path, cfg_options={"default_hooks.logger.interval": 7}) == base


def _write_finished_record(tmp_path, metrics: dict) -> dict:
    """The record a finished random-init run of the demo VOC config (seed 0) writes, built by the runner itself."""
    from mixbench.base.runkey import key_id
    from mixbench.transfer.records import record_path, write_record
    from mixbench.transfer.runner import _Run, build_record

    ck = Checkpoint(name="random", path=None)
    cfg = build_config(DEMO_VOC, ck, tmp_path / "wd", data_dir=tmp_path / "data")
    key = _random_key(tmp_path)
    path = record_path(tmp_path / "rec", DEMO_VOC.stem, "random", key_id(key))
    rec = build_record(cfg, _Run(DEMO_VOC, ck, key, path, 0, "none", 1, None, False), metrics, ("complete", None),
                       wall=1.0, op_backends={})
    write_record(path, rec)
    return rec


def test_finished_record_is_not_rerun_unless_the_key_changed(tmp_path, monkeypatch):
    from mmengine.runner import Runner

    rec = _write_finished_record(tmp_path, {"pascal_voc/AP50": 0.25})

    class Refused(Exception):
        pass

    def refuse(*a, **k):
        raise Refused("a run was started")

    monkeypatch.setattr(Runner, "from_cfg", refuse)
    kw = dict(records_dir=tmp_path / "rec", work_root=tmp_path / "wd", data_dir=tmp_path / "data")
    out = run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), **kw)
    assert out["metrics"] == rec["metrics"]
    # a changed seed, data root or --cfg-options is another run: it trains
    for change in [dict(seed=1), dict(data_dir=tmp_path / "other"), dict(cfg_options={"train_cfg.max_epochs": 3})]:
        with pytest.raises(Refused):
            run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), **{**kw, **change})


def test_resume_from_a_checkpoint_of_another_key_is_refused(tmp_path):
    from mixbench.transfer.runner import _run_key_hook

    class R:
        work_dir = "wd"

    hook = _run_key_hook({"seed": 0})
    saved: dict = {}
    hook.before_save_checkpoint(R(), saved)
    hook.after_load_checkpoint(R(), saved)  # its own checkpoint: fine
    with pytest.raises(TransferError, match="belongs to another run"):
        hook.after_load_checkpoint(R(), {"meta": {"mixbench_run_key": {"seed": 1}}})
    with pytest.raises(TransferError, match="belongs to another run"):
        hook.after_load_checkpoint(R(), {"meta": {}})  # a checkpoint from before run keys


def test_second_run_on_a_work_dir_is_refused_while_the_first_holds_it(tmp_path):
    import subprocess
    import sys

    from mixbench.base.locks import WorkDirLockedError, work_dir_lock

    wd = tmp_path / "wd"
    with work_dir_lock(wd):
        with pytest.raises(WorkDirLockedError, match=r"wd: another run holds this work dir \(pid \d+"):
            with work_dir_lock(wd):
                pass
        # another process too (flock is per open file, so this is the real case)
        code = ("import sys; from mixbench.base.locks import work_dir_lock\n"
                f"with work_dir_lock({str(wd)!r}): pass")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert other.returncode != 0 and "another run holds this work dir" in other.stderr
    with work_dir_lock(wd):  # released: free again
        pass


def test_run_transfer_refuses_a_work_dir_another_run_holds(tmp_path, monkeypatch):
    """Two transfers of the same checkpoint and config must not train at once in one work dir."""
    from mmengine.runner import Runner

    from mixbench.base.locks import WorkDirLockedError, work_dir_lock
    from mixbench.transfer.runner import work_dir_for

    def refuse(*a, **k):
        raise AssertionError("trained although another run holds the work dir")

    monkeypatch.setattr(Runner, "from_cfg", refuse)
    held = work_dir_for(DEMO_VOC, "random", tmp_path / "wd", _random_key(tmp_path))
    with work_dir_lock(held):
        with pytest.raises(WorkDirLockedError, match="another run holds this work dir"):
            run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), records_dir=tmp_path / "rec",
                         work_root=tmp_path / "wd", data_dir=tmp_path / "data")


@pytest.mark.parametrize("epochs", [0, -3])
def test_a_schedule_of_no_epoch_is_refused_before_a_runner_is_built(tmp_path, monkeypatch, capsys, epochs):
    from mmengine.runner import Runner

    from mixbench.cli import main

    def refuse(*a, **k):
        raise AssertionError("a Runner was built for a run that cannot train")

    monkeypatch.setattr(Runner, "from_cfg", refuse)
    refused = rf"train_cfg.max_epochs={epochs}: a run must train at least one epoch"
    with pytest.raises(ValueError, match=refused):
        run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), records_dir=tmp_path / "rec",
                     work_root=tmp_path / "wd", data_dir=tmp_path / "data",
                     cfg_options={"train_cfg.max_epochs": epochs})
    argv = ["transfer", "random", "--config", str(DEMO_VOC), "--records-dir", str(tmp_path / "rec"),
            "--work-root", str(tmp_path / "wd"), "--cfg-options", f"train_cfg.max_epochs={epochs}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"train_cfg.max_epochs={epochs}: a run must train at least one epoch" in err and "Traceback" not in err
    assert not (tmp_path / "rec").exists()


class _FakeRunner:
    """Stands in for mmengine's Runner: ``train()`` runs ``iters`` iterations and the test loop sees ``images``
    images, calling the hooks as mmengine's TestLoop does (one output per image)."""

    val_loop = None

    def __init__(self, cfg, iters: int, images: int) -> None:
        from types import SimpleNamespace

        self.work_dir, self.iter, self.hooks = cfg.work_dir, 0, []
        self._iters, self._images = iters, images
        self.test_loop = self
        self.dataloader = SimpleNamespace(dataset=SimpleNamespace(full_init=lambda: None))

    def register_hook(self, hook, priority="NORMAL") -> None:
        self.hooks.append(hook)

    def train(self) -> None:
        self.iter = self._iters

    def run(self) -> dict:  # the test loop
        for hook in self.hooks:
            hook.before_test_epoch(self)
        for i in range(self._images):
            for hook in self.hooks:
                hook.after_test_iter(self, batch_idx=i, data_batch=None, outputs=[object()])
        return {"pascal_voc/AP50": 0.0, "pascal_voc/recall": 0.0}


@pytest.mark.parametrize("iters, images, reason", [(0, 4, "trained no iteration"), (3, 0, "evaluated no image"),
                                                   (3, 4, None)])
def test_a_run_that_trained_or_tested_nothing_is_not_complete(tmp_path, monkeypatch, iters, images, reason):
    from mmengine.runner import Runner

    monkeypatch.setattr(Runner, "from_cfg", lambda cfg: _FakeRunner(cfg, iters, images))
    run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), records_dir=tmp_path / "rec",
                 work_root=tmp_path / "wd", data_dir=tmp_path / "data")
    (path,) = (tmp_path / "rec").rglob("*.json")
    rec = json.loads(path.read_text())
    if reason is None:  # the control: a run that trained and tested is a measurement, even at AP 0
        assert rec["status"] == "complete" and "invalid_reason" not in rec
    else:
        assert rec["status"] == "invalid" and reason in rec["invalid_reason"]


def test_runs_that_differ_only_in_seed_keep_one_record_each(tmp_path, monkeypatch):
    from mmengine.runner import Runner

    monkeypatch.setattr(Runner, "from_cfg", lambda cfg: _FakeRunner(cfg, 3, 4))
    kw = dict(records_dir=tmp_path / "rec", work_root=tmp_path / "wd", data_dir=tmp_path / "data")
    recs = [run_transfer(DEMO_VOC, Checkpoint(name="random", path=None), seed=seed, **kw) for seed in (0, 1)]
    files = sorted((tmp_path / "rec").rglob("*.json"))
    assert len(files) == 2 and {f.stem for f in files} == {r["run_key_id"] for r in recs}
    assert sorted(json.loads(f.read_text())["seed"] for f in files) == [0, 1]


def test_stale_lock_of_a_killed_run_is_detected_and_taken_over(tmp_path):
    import signal
    import subprocess
    import sys

    from mixbench.base.locks import work_dir_lock

    wd = tmp_path / "wd"
    code = ("import time; from mixbench.base.locks import work_dir_lock\n"
            f"with work_dir_lock({str(wd)!r}):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    notes: list[str] = []
    with work_dir_lock(wd, log=notes.append):
        pass
    assert len(notes) == 1 and f"stale lock (pid {proc.pid}" in notes[0]
