"""A transfer run's detector config: what the runner adds to an mmdet config, and the protocol read back from it.

Configs never hold checkpoint paths or data locations; :func:`build_config` adds them:
  * ``model.backbone.init_cfg = dict(type='Pretrained', checkpoint=<converted file>)``, and
    ``model.data_preprocessor.mean/std`` from the converted file's metadata (what the encoder was fed);
  * the data root on every dataset (and on CocoMetric's annotation file), and the checked datasets of
    :mod:`mixbench.transfer.datasets` in place of mmdet's;
  * BN: ``SyncBN`` only where it runs (several GPU processes), plain BN otherwise (one process, or CPU);
  * the run settings of :func:`mixbench.base.lifecycle.apply_run` (work dir, resume, seed, precision, guards).
:func:`protocol_settings` reads back what a results table must state (detector, BN mode, scales, schedule, ...).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from mixbench.base.lifecycle import apply_run, load_config
from mixbench.transfer.checkpoint import Checkpoint, TransferError

__all__ = ["DETECTORS", "apply_data_root", "build_config", "protocol_settings", "suite_data_root", "suite_of",
           "use_checked_datasets"]

DETECTORS = {"FasterRCNN": "Faster R-CNN", "RetinaNet": "RetinaNet", "MaskRCNN": "Mask R-CNN"}


def _datasets(cfg_node: Any) -> list[Any]:
    """Every leaf dataset dict under a dataloader's ``dataset`` (through RepeatDataset/ConcatDataset)."""
    if cfg_node is None:
        return []
    if "datasets" in cfg_node:
        return [d for sub in cfg_node["datasets"] for d in _datasets(sub)]
    if "dataset" in cfg_node:
        return _datasets(cfg_node["dataset"])
    return [cfg_node]


def _loaders(cfg: Any) -> list[Any]:
    return [cfg.get(k) for k in ("train_dataloader", "val_dataloader", "test_dataloader") if cfg.get(k)]


def suite_of(cfg: Any) -> str:
    """'voc' or 'coco', from the config's test evaluator (the metric decides which table a run belongs to)."""
    return "voc" if "VOC" in cfg.test_evaluator["type"] else "coco"


def suite_data_root(data_dir: str | Path, suite: str) -> str:
    """``--data-root DIR`` names the folder holding ``VOCdevkit/`` and ``coco/`` (mmdet's ``data/``)."""
    return str(Path(data_dir) / ("VOCdevkit" if suite == "voc" else "coco")) + "/"


def apply_data_root(cfg: Any, root: str) -> None:
    """Set ``data_root`` on every dataset and re-derive CocoMetric's ``ann_file`` from the val/test dataset."""
    root = root if root.endswith("/") else root + "/"
    cfg.data_root = root
    for loader in _loaders(cfg):
        for ds in _datasets(loader["dataset"]):
            ds["data_root"] = root
    for key, loader_key in (("val_evaluator", "val_dataloader"), ("test_evaluator", "test_dataloader")):
        ev = cfg.get(key)
        if ev and ev.get("type") == "CocoMetric" and cfg.get(loader_key):
            ds = _datasets(cfg[loader_key]["dataset"])[0]
            ev["ann_file"] = os.path.join(root, ds["ann_file"])


def use_checked_datasets(cfg: Any) -> None:
    """Swap mmdet's VOC/COCO datasets and image loader for :mod:`mixbench.transfer.datasets`' (same parsing; bad
    files named, dropped annotations counted), in every dataloader of the config."""
    from mixbench.transfer.datasets import SWAPS  # registers the types in mmdet's registries

    for loader in _loaders(cfg):
        for ds in _datasets(loader["dataset"]):
            ds["type"] = SWAPS.get(ds.get("type"), ds.get("type"))
            for step in ds.get("pipeline", []):
                step["type"] = SWAPS.get(step.get("type"), step.get("type"))


def _init_backbone(cfg: Any, ckpt: Checkpoint, world_size: int) -> None:
    """The backbone's starting weights, the pixel statistics they expect, and the BN type that runs here."""
    bb = cfg.model.backbone
    if ckpt.is_random:
        bb.init_cfg = None  # mmdet's default ResNet initialisation (Kaiming conv, BN weight 1 bias 0)
        if not bb.norm_cfg.get("requires_grad", True):
            # mmdet also zero-initialises the last BN weight of every residual block (zero_init_residual). With
            # BN frozen that weight can never move: every residual branch stays 0 for good and the "ResNet" is its
            # stem and three 1x1 shortcut convs. Random init means a ResNet with random weights, so it is off here.
            bb.zero_init_residual = False
    else:
        bb.init_cfg = dict(type="Pretrained", checkpoint=str(ckpt.converted))
        cfg.model.data_preprocessor.mean = list(ckpt.meta.pixel_mean)
        cfg.model.data_preprocessor.std = list(ckpt.meta.pixel_std)
        # mmcv decodes BGR; the converted meta says the encoder saw RGB (to_rgb=True).
        cfg.model.data_preprocessor.bgr_to_rgb = ckpt.meta.to_rgb
    # SyncBN synchronises over GPU processes only; one process (or CPU/gloo) uses plain BN, same semantics.
    if bb.norm_cfg.type == "SyncBN" and not (torch.cuda.is_available() and world_size > 1):
        bb.norm_cfg.type = "BN"


def build_config(config: str | Path, ckpt: Checkpoint, work_dir: Path, *, data_dir: str | Path | None = None,
                 cfg_options: dict | None = None, world_size: int = 1, seed: int = 0, resume: bool = True,
                 launcher: str = "none", amp: bool = False) -> Any:
    """Load a transfer config and add checkpoint, pixel statistics, data root, BN type and run settings."""
    cfg = load_config(config, cfg_options)
    apply_data_root(cfg, suite_data_root(data_dir, suite_of(cfg)) if data_dir else cfg.get("data_root", "data/"))
    use_checked_datasets(cfg)
    _init_backbone(cfg, ckpt, world_size)
    cfg.load_from = None
    # Runners built one after another in one process (the pipeline) must not share mmengine's named visualizer.
    cfg.visualizer.name = f"{Path(config).stem}/{ckpt.name}/{time.time_ns()}"
    apply_run(cfg, work_dir=work_dir, launcher=launcher, resume=resume, seed=seed, amp=amp)
    return cfg


def _scale(pipeline: list[dict]) -> list[int]:
    for t in pipeline:
        if t.get("type") == "Resize":
            return list(t["scale"])
    raise TransferError("no Resize transform in the pipeline: cannot state the image scale")


def _set_name(ds: Any, suite: str) -> str:
    stem = Path(ds["ann_file"]).stem
    if suite == "voc":
        return f"{ds.get('data_prefix', {}).get('sub_data_root', '').strip('/')} {stem}".strip()
    return stem.replace("instances_", "")


def _bn_mode(backbone: Any) -> str:
    """'frozen' (eval-mode BN, no gradient), 'finetune' (trained BN) or 'custom' (any other mix)."""
    trains = backbone.norm_cfg.get("requires_grad", True)
    if backbone.get("norm_eval") and not trains:
        return "frozen"
    if not backbone.get("norm_eval") and trains:
        return "finetune"
    return "custom"


def _head_norms(model: Any) -> dict[str, Any]:
    heads = {k: v for k, v in model.items() if k.endswith("head")}
    norms = {k: v.get("norm_cfg") for k, v in heads.items() if k != "roi_head"}
    for k, v in model.get("roi_head", {}).items():
        if isinstance(v, dict) and k.endswith("head"):
            norms[f"roi_head.{k}"] = v.get("norm_cfg")
    return norms


def protocol_settings(cfg: Any, world_size: int) -> dict[str, Any]:
    """The transfer protocol a results table must state (detector, BN mode, scales, sets, schedule, metric), read
    back from the resolved config."""
    model, bb = cfg.model, cfg.model.backbone
    suite = suite_of(cfg)
    train = cfg.train_dataloader.dataset
    times = train.get("times", 1) if train.get("type") == "RepeatDataset" else 1
    train_sets = _datasets(train)
    test_set = _datasets(cfg.test_dataloader.dataset)[0]
    max_epochs = cfg.train_cfg.max_epochs
    return {
        "detector": DETECTORS.get(model.type, model.type),
        "suite": suite,
        "backbone": f"R{bb.depth}",
        "bn_mode": _bn_mode(bb),
        "norm_type": bb.norm_cfg["type"],
        "norm_requires_grad": bb.norm_cfg.get("requires_grad", True),
        "norm_eval": bool(bb.get("norm_eval")),
        "frozen_stages": bb.get("frozen_stages", -1),
        "neck_norm": model.neck.get("norm_cfg"),
        "fpn_channels": model.neck.get("out_channels"),
        "head_norms": _head_norms(model),
        "train_scale": _scale(train_sets[0]["pipeline"]),
        "test_scale": _scale(test_set["pipeline"]),
        "train_sets": [_set_name(d, suite) for d in train_sets],
        "test_set": _set_name(test_set, suite),
        "repeat_times": times,
        "max_epochs": max_epochs,
        "epochs": max_epochs * times,
        "lr": cfg.optim_wrapper.optimizer.lr,
        "batch_per_process": cfg.train_dataloader.batch_size,
        "world_size": world_size,
        "param_scheduler": [dict(s) for s in cfg.param_scheduler],
        "metric": dict(cfg.test_evaluator),
        "pixel_mean": list(model.data_preprocessor.mean),
        "pixel_std": list(model.data_preprocessor.std),
        "data_root": cfg.data_root,
    }
