"""`--cfg-options train_cfg.max_epochs=8` on the synthetic presets moves the whole cosine schedule and the kNN
monitor to epoch 8. Checked by training a toy model with the preset's own resolved schedule through mmengine's
Runner and comparing the lr of every epoch with the cosine formula."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

REPO = Path(__file__).resolve().parents[2]
PRESETS = ["moco_r18_synthetic.py", "moco-mix_r18_synthetic.py", "cmc_r50half_synthetic.py"]


class _Toy(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x, mode="loss"):
        return {"loss": (self.w * x).pow(2).mean()}


class _LrPerEpoch(Hook):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def before_train_epoch(self, runner) -> None:
        self.lrs.append(runner.optim_wrapper.get_lr()["lr"][0])


def _lrs(cfg: Config, tmp_path: Path) -> list[float]:
    record = _LrPerEpoch()
    runner = Runner(model=_Toy(), work_dir=str(tmp_path), train_dataloader=dict(
        dataset=[dict(x=torch.ones(1))] * 2, sampler=dict(type="DefaultSampler", shuffle=False), batch_size=1,
        collate_fn=dict(type="default_collate")),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=cfg.optim_wrapper.optimizer.lr)),
        param_scheduler=cfg.param_scheduler, train_cfg=cfg.train_cfg, custom_hooks=[record],
        default_hooks=dict(checkpoint=None, logger=None), experiment_name=f"sched_{tmp_path.name}")
    runner.train()
    return record.lrs


def test_cosine_schedule_follows_max_epochs_from_the_command_line(tmp_path):
    for preset in PRESETS:
        cfg = Config.fromfile(str(REPO / "configs/pretrain" / preset))
        cfg.merge_from_dict({"train_cfg.max_epochs": 8})
        lr0 = cfg.optim_wrapper.optimizer.lr
        want = [lr0 * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(8)]  # SGDR eq. with eta_min 0, T_max 8
        got = _lrs(cfg, tmp_path / Path(preset).stem)
        assert len(got) == 8 and all(math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-12) for g, w in zip(got, want)), (
            preset, got, want)
        assert got[5] > got[6] > got[7] > 0  # still decaying after epoch 5


def test_knn_monitor_runs_at_the_last_epoch_whatever_max_epochs_is():
    from mixbench.pretrain.hooks import KNNMonitorHook

    cfg = Config.fromfile(str(REPO / "configs/pretrain/moco_r18_synthetic.py"))
    (knn,) = [h for h in cfg.custom_hooks if h["type"] == "KNNMonitorHook"]
    assert knn["interval"] is None
    hook = KNNMonitorHook(**{k: v for k, v in knn.items() if k != "type"})
    seen: list[str] = []
    hook._evaluate = lambda runner, when: seen.append(when)

    class R:
        max_epochs = 8
        epoch = 0

    for epoch in range(8):
        R.epoch = epoch
        hook.after_train_epoch(R())
    assert seen == ["epoch 8"]
