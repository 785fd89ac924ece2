"""Linear evaluation (paper sec. 4.2): a linear classifier on frozen features, trained by mmengine's Runner.

Protocol (as MoCo's main_lincls): the pretrained encoder is frozen and kept in eval mode (BN statistics
fixed), a ``Linear(feature_dim, C)`` head initialised N(0, 0.01) is trained with SGD momentum 0.9 on
RandomResizedCrop + flip, and top-1 of a single centre crop (Resize + CenterCrop) is reported. The numbers
(IN-100: lr 10, wd 0, 60 epochs, steps 30/40/50; IN-1K: lr 30, wd 0, 100 epochs, steps 60/80/90) live in
``configs/linear/``.

Run::

    mixbench linear configs/linear/linear_1xb256-60e_in100.py --checkpoint work_dirs/moco/epoch_800.pth
    torchrun --nproc-per-node 8 -m transfer.cli linear CONFIG --checkpoint C --launcher pytorch

Registered here (mmengine root registries): ``LinearClassifier`` (model), ``LabeledImageFolder`` (data set,
shared with kNN and the flatness plot) and ``TopKAccuracy`` (metric; mmpretrain's Accuracy is not a
dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from pretrain.features import load_feature_extractor
from pretrain.imagenet100 import IMAGENET100_WNIDS
from pretrain.launch import init_cpu_process_group, use_cpu_ddp

__all__ = ["LabeledImageFolder", "LinearClassifier", "TopKAccuracy", "resolve_classes", "run_linear"]

IMG_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def resolve_classes(data_root: str | Path, classes: str | Sequence[str] | None) -> list[str]:
    """The ordered class list, label i = position i in it, for every split.

    ``None`` = the class folders of ``data_root/train``; ``'imagenet100'`` = the paper's 100 wnids
    (``pretrain.imagenet100``); or an explicit list of folder names.
    """
    root = Path(data_root)
    if classes == "imagenet100":
        return list(IMAGENET100_WNIDS)
    if isinstance(classes, str):
        raise ValueError(f"classes must be None, 'imagenet100' or a list of folder names, got {classes!r}")
    if classes is not None:
        return list(classes)
    train = root / "train"
    if not train.is_dir():
        raise FileNotFoundError(
            f"{train}: no such folder (expected an ImageNet-style ROOT/train/<class>/*.JPEG)"
        )
    found = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not found:
        raise ValueError(f"{train}: no class folders")
    return found


def build_pipeline(pipeline: Sequence[dict[str, Any]]) -> v2.Compose:
    """torchvision.transforms.v2 from config dicts (``dict(type='RandomResizedCrop', size=224)``) +
    PILToTensor."""
    ops = []
    for step in pipeline:
        step = dict(step)
        name = step.pop("type")
        if not hasattr(v2, name):
            raise ValueError(f"pipeline step {name!r} is not a torchvision.transforms.v2 transform")
        ops.append(getattr(v2, name)(**step))
    return v2.Compose([*ops, v2.PILToTensor()])


@DATASETS.register_module()
class LabeledImageFolder(Dataset):
    """``data_root/<split>/<class>/*.JPEG`` with labels from :func:`resolve_classes`.

    Items are ``{'inputs': (3, H, W) uint8 RGB, 'data_samples': int label}``; the frozen extractor normalises.
    Every class must have a folder in the ``train`` split (a missing ImageNet-100 wnid is an error, not a
    silently smaller task); ``max_per_class`` caps images per class (quick monitors).
    """

    def __init__(
        self,
        data_root: str,
        split: str,
        pipeline: Sequence[dict[str, Any]],
        classes: str | Sequence[str] | None = None,
        max_per_class: int | None = None,
    ) -> None:
        self.root = Path(data_root) / split
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.root}: no such folder (expected {data_root}/{split}/<class>/*.JPEG)"
            )
        self.classes = resolve_classes(data_root, classes)
        self.transform = build_pipeline(pipeline)
        missing = [c for c in self.classes if not (self.root / c).is_dir()]
        if missing and split == "train":
            raise FileNotFoundError(f"{self.root}: {len(missing)} class folders missing, e.g. {missing[:3]}")
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            if not folder.is_dir():
                continue
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
            self.samples += [(p, label) for p in files[:max_per_class]]
        if not self.samples:
            raise ValueError(f"{self.root}: no images found in the {len(self.classes)} class folders")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        path, label = self.samples[idx]
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        return {"inputs": self.transform(rgb), "data_samples": label}


@MODELS.register_module()
class LinearClassifier(BaseModel):
    """Frozen :class:`pretrain.features.FeatureExtractor` + trainable ``Linear(feature_dim, num_classes)``.

    Args:
        checkpoint: extractor spec (checkpoint path or ``random:<arch>``); injected by ``mixbench linear``,
            never written in a config.
        num_classes: classes C of the task.

    Shape: inputs (N, 3, H, W) uint8 RGB -> logits (N, C).
    """

    def __init__(
        self,
        checkpoint: str | None,
        num_classes: int,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not checkpoint:
            raise ValueError("model.checkpoint is not set: pass --checkpoint CKPT (or random:resnet50)")
        self.backbone = load_feature_extractor(checkpoint)
        self.head = nn.Linear(self.backbone.feature_dim, num_classes)
        nn.init.normal_(self.head.weight, std=0.01)  # MoCo main_lincls init
        nn.init.zeros_(self.head.bias)

    def forward(
        self, inputs: torch.Tensor, data_samples: torch.Tensor | None = None, mode: str = "tensor"
    ) -> torch.Tensor | dict[str, torch.Tensor] | list[dict[str, Any]]:
        with torch.no_grad():
            feats = self.backbone(inputs)  # (N, D); the extractor is frozen and always in eval mode
        logits = self.head(feats)  # (N, C)
        if mode == "tensor":
            return logits
        if data_samples is None:
            raise ValueError(f"mode={mode!r} needs labels (data_samples)")
        labels = torch.as_tensor(data_samples, device=logits.device).long()
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, labels)}
        if mode == "predict":
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices.cpu()
            return [{"topk": t, "gt_label": int(y)} for t, y in zip(top, labels.cpu())]
        raise ValueError(f"unknown mode {mode!r}")


@METRICS.register_module()
class TopKAccuracy(BaseMetric):
    """Top-1 (and top-5) accuracy as fractions in [0, 1] from ``LinearClassifier``'s predictions."""

    default_prefix = "accuracy"

    def __init__(self, topk: Sequence[int] = (1, 5), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.topk = tuple(topk)

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        for s in data_samples:
            self.results.append(
                {f"top{k}": float(s["gt_label"] in s["topk"][:k].tolist()) for k in self.topk}
            )

    def compute_metrics(self, results: list[dict[str, float]]) -> dict[str, float]:
        if not results:
            raise ValueError("TopKAccuracy: no predictions were processed (empty validation set?)")
        return {key: sum(r[key] for r in results) / len(results) for key in results[0]}


def run_linear(
    config: str | Path,
    checkpoint: str,
    work_dir: str | None = None,
    cfg_options: dict[str, Any] | None = None,
    launcher: str = "none",
) -> dict[str, Any]:
    """Train and evaluate the linear classifier; returns the final validation metrics (+ run facts).

    The checkpoint is injected as ``model.checkpoint``; ``model.num_classes=None`` in a config means
    "count the class folders" (the synthetic preset). The result is also written to
    ``WORK_DIR/linear_result.json``.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    from convert.io_utils import atomic_write_json
    from convert.safe_load import allow_mmengine_checkpoints

    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.checkpoint = str(checkpoint)
    if cfg.model.get("num_classes") is None:
        ds = cfg.train_dataloader.dataset
        cfg.model.num_classes = len(resolve_classes(ds.data_root, ds.get("classes")))
    ckpt_name = Path(str(checkpoint).replace("random:", "random_")).stem
    cfg.work_dir = work_dir or str(Path("work_dirs") / "linear" / f"{Path(config).stem}_{ckpt_name}")
    cfg.launcher = launcher
    if launcher != "none" and not torch.cuda.is_available():
        init_cpu_process_group(launcher)
        use_cpu_ddp(cfg)
    allow_mmengine_checkpoints()
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    metrics = {
        k[len("val/") :]: float(v.current()) for k, v in hub.log_scalars.items() if k.startswith("val/")
    }
    if "accuracy/top1" not in metrics:
        raise RuntimeError(f"{cfg.work_dir}: validation did not run (no accuracy/top1 logged)")
    result = {
        "checkpoint": str(checkpoint),
        "config": str(config),
        "epochs": int(cfg.train_cfg.max_epochs),
        "num_classes": int(cfg.model.num_classes),
        "feature_dim": int(runner.model.backbone.feature_dim) if hasattr(runner.model, "backbone") else None,
        "metrics": metrics,
    }
    if runner.rank == 0:
        atomic_write_json(Path(cfg.work_dir) / "linear_result.json", result)
    return result

