"""Pretraining entry point: config -> mmengine Runner -> checkpoints in work_dir.

    mixbench pretrain configs/pretrain/moco_r18_synthetic.py      # one process
    torchrun --nproc_per_node 2 -m mixbench.cli pretrain CONFIG --launcher pytorch   # 2 processes, gloo on CPU
    mixbench pretrain CONFIG --resume                             # continue from last_checkpoint
    mixbench pretrain CONFIG --amp --channels-last                # GPU: bf16 (or fp16 + loss scaling), NHWC

The run goes through the lifecycle every stage shares (:mod:`mixbench.base.lifecycle`): processes, config and
``--cfg-options``, precision, CPU DDP (gloo, no GPU id, no SyncBN), guards, the work dir's lock, the Runner.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mixbench.base.lifecycle import apply_run, init_launcher, load_config, run_runner
from mixbench.base.runkey import run_key


def default_work_dir(config: str | os.PathLike) -> Path:
    """``work_dirs/pretrain/<config name>``."""
    return Path("work_dirs") / "pretrain" / Path(config).stem


def _fill_dataset_size(cfg) -> None:
    """CMC's memory banks have one row per image: fill ``model.n_data`` from the dataset when unset."""
    if cfg.model.get("type") != "CMC" or cfg.model.get("n_data") not in (None, "auto"):
        return
    from mmengine.registry import DATASETS

    import mixbench.pretrain.registry  # noqa: F401  (registers ImageFolderViews)

    cfg.model.n_data = len(DATASETS.build(cfg.train_dataloader.dataset))


def build_config(
    config: str | os.PathLike,
    work_dir: str | os.PathLike | None = None,
    cfg_options: dict | None = None,
    launcher: str = "none",
    resume: bool = False,
    amp: bool = False,
    channels_last: bool = False,
):
    """Load CONFIG and apply the command-line choices; returns an mmengine ``Config``.

    ``amp``/``channels_last``: see :mod:`mixbench.base.precision` (on CPU ``--amp`` keeps fp32 and says so); the
    settings land in ``cfg.mixbench_run`` and, through ``MixbenchMetaHook``, in every checkpoint's
    ``meta['mixbench_run']``.
    """
    cfg = load_config(config, cfg_options)
    apply_run(cfg, work_dir=work_dir or cfg.get("work_dir") or default_work_dir(config), launcher=launcher,
              resume=resume, amp=amp, channels_last=channels_last)
    _fill_dataset_size(cfg)
    if channels_last:  # converted when built, before mmengine wraps it in DDP (whose buckets follow the layout)
        cfg.model = dict(type="ChannelsLastModel", model=cfg.model)
    return cfg


def pretrain_run_key(cfg: Any, config: str | os.PathLike) -> dict[str, Any]:
    """What decides a pretraining result of one process (:func:`mixbench.base.runkey.run_key`): the resolved
    config ``cfg`` of ``config``, its data root and seed."""
    return run_key(cfg, config=config, seed=(cfg.get("randomness") or {}).get("seed"), world_size=1,
                   data_root=cfg.train_dataloader.dataset.root)


def train(config: str | os.PathLike, work_dir: str | os.PathLike | None = None, cfg_options: dict | None = None,
          launcher: str = "none", **run: bool) -> Path:
    """Pretrain with mmengine's Runner; returns the work_dir (``epoch_N.pth``, ``last_checkpoint``).

    ``run``: ``resume``, ``amp``, ``channels_last``, passed on to :func:`build_config`.
    """
    init_launcher(launcher)
    cfg = build_config(config, work_dir, cfg_options, launcher, **run)
    run_runner(cfg, lambda runner: runner.train())
    return Path(cfg.work_dir)
