"""The one run lifecycle: pretraining, linear evaluation and transfer each build their Runner through
``mixbench.base.lifecycle`` with the work dir held, and a schedule that trains nothing is refused before."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mixbench.base import lifecycle

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = REPO / "configs/pretrain/moco_r18_synthetic.py"
LINEAR = REPO / "configs/linear/linear_1xb16-2e_synthetic.py"
TRANSFER = REPO / "configs/transfer/demo/faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py"


class _Built(Exception):
    pass


@pytest.fixture
def built(monkeypatch) -> list[dict]:
    """Every Runner the lifecycle builds: its config, the caller's model builder, and who held the work dir."""
    seen: list[dict] = []

    def build(cfg, build_model=None):
        holder = json.loads((Path(cfg.work_dir) / ".lock").read_text())
        seen.append({"cfg": cfg, "build_model": build_model, "holder": holder})
        raise _Built

    monkeypatch.setattr(lifecycle, "build_runner", build)
    return seen


def test_the_three_stages_build_their_runner_through_the_one_lifecycle(tmp_path, built):
    from mixbench.pretrain.features import random_extractor
    from mixbench.pretrain.linear import LinearClassifier, run_linear
    from mixbench.pretrain.train import train
    from mixbench.transfer.checkpoint import Checkpoint
    from mixbench.transfer.runner import run_transfer

    extractor = random_extractor("resnet18")
    with pytest.raises(_Built):
        train(PRETRAIN, tmp_path / "pretrain")
    with pytest.raises(_Built):
        run_linear(LINEAR, "random:resnet18", str(tmp_path / "linear"), {"model.num_classes": 4},
                   extractor=extractor)
    with pytest.raises(_Built):
        run_transfer(TRANSFER, Checkpoint(name="random", path=None), records_dir=tmp_path / "rec",
                     work_root=tmp_path / "transfer", data_dir=tmp_path / "data")
    assert [Path(b["cfg"].work_dir).relative_to(tmp_path).parts[0] for b in built] == ["pretrain", "linear",
                                                                                       "transfer"]
    for b in built:
        assert b["holder"]["pid"] == os.getpid()  # the work dir was held while the Runner was built
        assert b["cfg"].launcher == "none" and b["cfg"].mixbench_run["device"] in ("cpu", "cuda")
        assert any(h["type"] == "mmengine.FiniteLossHook" for h in b["cfg"].custom_hooks)
    # linear evaluation: the Runner builds the classifier around the extractor the caller handed over
    model = built[1]["build_model"](built[1]["cfg"].model)
    assert isinstance(model, LinearClassifier) and model.backbone is extractor and model.head.out_features == 4
    assert built[0]["build_model"] is None and built[2]["build_model"] is None  # mmengine's registry builds these


@pytest.mark.parametrize("train_cfg, refused", [
    (dict(max_epochs=0), "train_cfg.max_epochs=0: a run must train at least one epoch"),
    (dict(max_epochs=-3), "train_cfg.max_epochs=-3: a run must train at least one epoch"),
    (dict(by_epoch=False, max_iters=0), "train_cfg.max_iters=0: a run must train at least one iteration"),
])
def test_a_schedule_that_trains_nothing_is_refused(tmp_path, train_cfg, refused):
    from mmengine.config import Config

    cfg = Config(dict(train_cfg=train_cfg, optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1))))
    with pytest.raises(ValueError, match=refused):
        lifecycle.apply_run(cfg, work_dir=tmp_path)
    lifecycle.apply_run(Config(dict(train_cfg=dict(max_epochs=1), optim_wrapper=cfg.optim_wrapper)), work_dir=tmp_path)


def test_pretrain_cli_refuses_zero_epochs_in_one_line(tmp_path, capsys):
    from mixbench.cli import main

    assert main(["pretrain", str(PRETRAIN), "--work-dir", str(tmp_path), "--cfg-options",
                 "train_cfg.max_epochs=0"]) == 2
    err = capsys.readouterr().err
    assert "train_cfg.max_epochs=0: a run must train at least one epoch" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written into the work dir


def test_load_config_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py: config file not found"):
        lifecycle.load_config(tmp_path / "nope.py")
