"""Every linear-eval config loads and states the paper's protocol numbers (sec. 4.2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "linear"

# file -> (lr, weight decay, epochs, milestones, batch per process, classes); paper sec. 4.2.
PROTOCOLS = {
    "linear_1xb256-60e_in100.py": (10.0, 0.0, 60, [30, 40, 50], 256, 100),
    "linear_1xb256-100e_in1k.py": (30.0, 0.0, 100, [60, 80, 90], 256, 1000),
    # CPU preset: the IN-100 optimiser and schedule; only data root / epochs / batch (and crop size) change.
    "linear_1xb16-2e_synthetic.py": (10.0, 0.0, 2, [30, 40, 50], 16, None),
}


def test_every_config_is_covered():
    assert sorted(p.name for p in CONFIG_DIR.glob("*.py")) == sorted(PROTOCOLS)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_protocol_numbers(name):
    lr, wd, epochs, milestones, batch, classes = PROTOCOLS[name]
    cfg = Config.fromfile(str(CONFIG_DIR / name))
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == ("SGD", lr, 0.9, wd)
    assert len(cfg.param_scheduler) == 1
    sched = cfg.param_scheduler[0]
    assert (sched.type, sched.by_epoch, sched.milestones, sched.gamma) == (
        "MultiStepLR",
        True,
        milestones,
        0.1,
    )
    assert cfg.train_cfg.max_epochs == epochs and cfg.train_cfg.by_epoch
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.auto_scale_lr == {"base_batch_size": 256, "enable": True}  # lr is quoted for a total batch 256
    assert cfg.model.type == "LinearClassifier" and cfg.model.num_classes == classes
    assert "extractor" not in cfg.model  # built from --checkpoint by `mixbench linear`, never in a config
    train_ops = [t["type"] for t in cfg.train_dataloader.dataset.pipeline]
    val_ops = [t["type"] for t in cfg.val_dataloader.dataset.pipeline]
    assert train_ops == ["RandomResizedCrop", "RandomHorizontalFlip"]
    assert val_ops == ["Resize", "CenterCrop"]  # single centre crop
    assert cfg.val_evaluator.type == "TopKAccuracy" and 1 in cfg.val_evaluator.topk
    if name.endswith("in100.py"):
        assert cfg.train_dataloader.dataset.classes == "imagenet100"
        assert cfg.train_dataloader.dataset.pipeline[0]["size"] == 224
