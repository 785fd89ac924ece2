"""Linear evaluation (paper sec. 4.2): a linear classifier on frozen features, trained by mmengine's Runner.

Protocol (as MoCo's main_lincls): the pretrained encoder is frozen and kept in eval mode (BN statistics
fixed), a ``Linear(feature_dim, C)`` head initialised N(0, 0.01) is trained with SGD momentum 0.9 on
RandomResizedCrop + flip, and top-1 of a single centre crop (Resize + CenterCrop) is reported. The numbers
(IN-100: lr 10, wd 0, 60 epochs, steps 30/40/50; IN-1K: lr 30, wd 0, 100 epochs, steps 60/80/90) live in
``configs/linear/``.

Run::

    mixbench linear configs/linear/linear_1xb256-60e_in100.py --checkpoint work_dirs/moco/epoch_800.pth
    torchrun --nproc-per-node 8 -m mixbench.cli linear CONFIG --checkpoint C --launcher pytorch

Registered here (mmengine root registries): ``LinearClassifier`` (model) and ``TopKAccuracy`` (metric;
mmpretrain's Accuracy is not a dependency). Images come from ``mixbench.pretrain.data.ImageFolderViews``.
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
from mmengine.registry import METRICS, MODELS

from mixbench.base.launch import init_cpu_process_group, use_cpu_ddp
from mixbench.base.precision import apply_run_settings
from mixbench.pretrain import data as _data  # noqa: F401  (registers ImageFolderViews, eval_collate)
from mixbench.pretrain.data import resolve_classes

__all__ = ["LinearClassifier", "TopKAccuracy", "run_linear"]

@MODELS.register_module()
class LinearClassifier(BaseModel):
    """Frozen :class:`mixbench.pretrain.features.FeatureExtractor` + trainable ``Linear(feature_dim, num_classes)``.

    Args:
        extractor: config of the frozen extractor, built from mmengine's ``MODELS`` registry; the configs use
            ``dict(type='CheckpointFeatureExtractor', spec=CKPT)`` (``mixbench.evaluate``), whose ``spec`` (a
            checkpoint path or ``random:<arch>``) ``mixbench linear`` injects: never written in a config.
        num_classes: classes C of the task.

    Shape: inputs (N, 3, H, W) uint8 RGB -> logits (N, C).
    """

    def __init__(
        self,
        extractor: dict,
        num_classes: int,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not extractor.get("spec"):
            raise ValueError("model.extractor.spec is not set: pass --checkpoint CKPT (or random:resnet50)")
        self.backbone = MODELS.build(extractor)
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
    amp: bool = False,
) -> dict[str, Any]:
    """Train and evaluate the linear classifier; returns the final validation metrics (+ run facts).

    ``amp``: :mod:`mixbench.base.precision` (bf16/fp16 on a GPU, fp32 on CPU); stored in the result's ``run``.

    The checkpoint is injected as ``model.extractor.spec``; ``model.num_classes=None`` in a config means
    "count the class folders" (the synthetic preset). The result is also written to
    ``WORK_DIR/linear_result.json``.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mixbench.base.hooks import guard_config
    from mixbench.base.io import atomic_write_json
    from mixbench.base.safe_load import allow_mmengine_checkpoints

    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.extractor.spec = str(checkpoint)
    if cfg.model.get("num_classes") is None:
        ds = cfg.train_dataloader.dataset
        cfg.model.num_classes = len(resolve_classes(ds.root, ds.get("classes")))
    ckpt_name = Path(str(checkpoint).replace("random:", "random_")).stem
    cfg.work_dir = work_dir or str(Path("work_dirs") / "linear" / f"{Path(config).stem}_{ckpt_name}")
    cfg.launcher = launcher
    run = apply_run_settings(cfg, amp=amp)
    if launcher != "none" and not torch.cuda.is_available():
        init_cpu_process_group(launcher)
        use_cpu_ddp(cfg)
    guard_config(cfg)  # stop at a non-finite loss; checkpoint saves that cannot lose the last good one
    allow_mmengine_checkpoints()
    runner = Runner.from_cfg(cfg)
    if runner.rank == 0:
        from mixbench.base.locks import work_dir_lock

        with work_dir_lock(cfg.work_dir):  # a second linear eval on this work dir is refused, not interleaved
            runner.train()
    else:
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
        "run": run,
    }
    if runner.rank == 0:
        atomic_write_json(Path(cfg.work_dir) / "linear_result.json", result)
    return result

