"""Pretraining entry point: config -> mmengine Runner -> checkpoints in work_dir.

    mixbench pretrain configs/pretrain/moco_r18_synthetic.py      # one process
    torchrun --nproc_per_node 2 -m pretrain.train CONFIG --launcher pytorch   # 2 processes, gloo on CPU
    mixbench pretrain CONFIG --resume                             # continue from last_checkpoint
    mixbench pretrain CONFIG --amp --channels-last                # GPU: bf16 (or fp16 + loss scaling), NHWC

On CPU, mmengine's Runner runs distributed only with three adjustments (DESIGN.md, stack facts): the gloo
process group is initialised here before the Runner (its ``pytorch`` launcher calls
``torch.cuda.set_device``), the DDP wrapper gets ``device_ids=None``, and SyncBN (GPU-only) is not applied.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from mixbench.base.hooks import guard_config
from mixbench.base.launch import LAUNCHERS, init_cpu_process_group, use_cpu_ddp
from mixbench.base.precision import apply_run_settings


def default_work_dir(config: str | os.PathLike) -> Path:
    """``work_dirs/pretrain/<config name>``."""
    return Path("work_dirs") / "pretrain" / Path(config).stem


def _setup_cpu_distributed(cfg, launcher: str) -> None:
    init_cpu_process_group(launcher)
    use_cpu_ddp(cfg)
    if cfg.get("sync_bn"):
        logging.getLogger(__name__).warning("SyncBN needs GPUs; training on CPU without it")
    cfg.sync_bn = None


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
    from mmengine.config import Config

    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    if not Path(config).is_file():
        raise FileNotFoundError(f"{config}: config file not found")
    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = str(work_dir or cfg.get("work_dir") or default_work_dir(config))
    if resume:
        cfg.resume = True  # mmengine finds work_dir/last_checkpoint
        cfg.load_from = None
    apply_run_settings(cfg, amp=amp, channels_last=channels_last)
    if launcher != "none" and not torch.cuda.is_available():
        _setup_cpu_distributed(cfg, launcher)
    _fill_dataset_size(cfg)
    guard_config(cfg)  # stop at a non-finite loss; checkpoint saves that cannot lose the last good one
    if channels_last:  # converted when built, before mmengine wraps it in DDP (whose buckets follow the layout)
        cfg.model = dict(type="ChannelsLastModel", model=cfg.model)
    return cfg


def train(
    config: str | os.PathLike,
    work_dir: str | os.PathLike | None = None,
    cfg_options: dict | None = None,
    launcher: str = "none",
    resume: bool = False,
    amp: bool = False,
    channels_last: bool = False,
) -> Path:
    """Pretrain with mmengine's Runner; returns the work_dir (``epoch_N.pth``, ``last_checkpoint``)."""
    from mmengine.runner import Runner

    from mixbench.base.safe_load import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()  # so the Runner can resume its own checkpoints under weights_only loading
    cfg = build_config(config, work_dir, cfg_options, launcher, resume, amp, channels_last)
    if cfg.get("cpu_threads") and not torch.cuda.is_available():
        torch.set_num_threads(int(cfg.cpu_threads))
    from mmengine.dist import get_rank

    from mixbench.base.locks import work_dir_lock

    if get_rank() != 0:  # rank 0 holds the work dir for every process of the run
        Runner.from_cfg(cfg).train()
        return Path(cfg.work_dir)
    with work_dir_lock(cfg.work_dir):  # a second run on this work dir is refused, not interleaved
        Runner.from_cfg(cfg).train()
    return Path(cfg.work_dir)

