"""Linear evaluation (paper sec. 4.2): a linear classifier on frozen features, trained by mmengine's Runner.

Protocol (as MoCo's main_lincls): the pretrained encoder is frozen and kept in eval mode (BN statistics
fixed), a ``Linear(feature_dim, C)`` head initialised N(0, 0.01) is trained with SGD momentum 0.9 on
RandomResizedCrop + flip, and top-1 of a single centre crop (Resize + CenterCrop) is reported. The numbers
(IN-100: lr 10, wd 0, 60 epochs, steps 30/40/50; IN-1K: lr 30, wd 0, 100 epochs, steps 60/80/90) live in
``configs/linear/``.

Run::

    mixbench linear configs/linear/linear_1xb256-60e_in100.py --checkpoint work_dirs/moco/epoch_800.pth
    torchrun --nproc-per-node 8 -m mixbench.cli linear CONFIG --checkpoint C --launcher pytorch

The frozen extractor is built by the caller and handed to :func:`run_linear` (``mixbench linear`` reads the
checkpoint with ``mixbench.evaluate.load_feature_extractor``, any layout the converter knows), so this stage needs
nothing above it. Registered here (mmengine root registries): ``LinearClassifier`` (model) and ``TopKAccuracy``
(metric; mmpretrain's Accuracy is not a dependency). Images come from ``mixbench.pretrain.data.ImageFolderViews``.
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

from mixbench.base.dist import rank
from mixbench.base.io import atomic_write_json
from mixbench.base.lifecycle import apply_run, init_launcher, load_config, run_runner
from mixbench.base.provenance import provenance
from mixbench.pretrain import data as _data  # noqa: F401  (registers ImageFolderViews, eval_collate)
from mixbench.pretrain.data import resolve_classes

__all__ = ["LinearClassifier", "TopKAccuracy", "run_linear"]

@MODELS.register_module()
class LinearClassifier(BaseModel):
    """Frozen :class:`mixbench.pretrain.features.FeatureExtractor` + trainable ``Linear(feature_dim, num_classes)``.

    Args:
        extractor: the frozen extractor (any module with ``feature_dim``), e.g.
            ``mixbench.evaluate.load_feature_extractor(CKPT)`` or ``features.random_extractor('resnet50')``.
        num_classes: classes C of the task.

    Shape: inputs (N, 3, H, W) uint8 RGB -> logits (N, C).
    """

    def __init__(
        self,
        extractor: nn.Module,
        num_classes: int,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(extractor, nn.Module):
            raise TypeError(f"extractor must be a built feature extractor (nn.Module), got {type(extractor).__name__}")
        self.backbone = extractor
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


def _default_work_dir(config: str | Path, checkpoint: str) -> str:
    """``work_dirs/linear/<config name>_<checkpoint name>``."""
    ckpt_name = Path(str(checkpoint).replace("random:", "random_")).stem
    return str(Path("work_dirs") / "linear" / f"{Path(config).stem}_{ckpt_name}")


def _model_builder(extractor: nn.Module, config: str | Path):
    """Builds the config's ``LinearClassifier`` around ``extractor`` when the Runner builds its model (after it
    seeded the run, so the head's initialisation follows the run's seed)."""

    def build(model_cfg: Any) -> LinearClassifier:
        kwargs = dict(model_cfg)
        if kwargs.pop("type", None) not in ("LinearClassifier", LinearClassifier):
            raise ValueError(f"{config}: model.type must be 'LinearClassifier', got {model_cfg.get('type')!r}")
        kwargs.pop("extractor", None)
        return LinearClassifier(extractor=extractor, **kwargs)

    return build


def _validation_metrics(runner: Any) -> dict[str, float]:
    """Train, then read the last validation metrics mmengine logged."""
    runner.train()
    hub = runner.message_hub
    return {k[len("val/"):]: float(v.current()) for k, v in hub.log_scalars.items() if k.startswith("val/")}


def run_linear(
    config: str | Path,
    checkpoint: str,
    work_dir: str | None = None,
    cfg_options: dict[str, Any] | None = None,
    launcher: str = "none",
    amp: bool = False,
    *,
    extractor: nn.Module,
) -> dict[str, Any]:
    """Train and evaluate the linear classifier on ``extractor``; returns the final validation metrics (+ run facts).

    ``checkpoint`` names what the extractor was read from (it names the work dir and the result). ``amp``:
    :mod:`mixbench.base.precision` (bf16/fp16 on a GPU, fp32 on CPU); stored in the result's ``run``.
    ``model.num_classes=None`` in a config means "count the class folders" (the synthetic preset). The result is
    also written to ``WORK_DIR/linear_result.json``.
    """
    init_launcher(launcher)
    cfg = load_config(config, cfg_options)
    # what the classifier is built on, for the dumped config and the log; the module itself is handed over
    cfg.model.extractor = dict(source=str(checkpoint), feature_dim=int(extractor.feature_dim))
    if cfg.model.get("num_classes") is None:
        ds = cfg.train_dataloader.dataset
        cfg.model.num_classes = len(resolve_classes(ds.root, ds.get("classes")))
    run = apply_run(cfg, work_dir=work_dir or _default_work_dir(config, checkpoint), launcher=launcher, amp=amp)
    metrics = run_runner(cfg, _validation_metrics, build_model=_model_builder(extractor, config))
    if "accuracy/top1" not in metrics:
        raise RuntimeError(f"{cfg.work_dir}: validation did not run (no accuracy/top1 logged)")
    result = {
        "checkpoint": str(checkpoint),
        "config": str(config),
        "epochs": int(cfg.train_cfg.max_epochs),
        "num_classes": int(cfg.model.num_classes),
        "feature_dim": int(extractor.feature_dim),
        "metrics": metrics,
        "run": run,
        **provenance(),
    }
    if rank() == 0:
        atomic_write_json(Path(cfg.work_dir) / "linear_result.json", result)
    return result
