"""mmengine hooks of the pretraining stage.

``MixbenchMetaHook`` writes the model's metadata into ``checkpoint['meta']['mixbench']`` of every checkpoint the
Runner saves, so the converter never has to guess the method, architecture or input statistics.
``KNNMonitorHook`` logs the weighted kNN top-1 (``pretrain.knn``) of the live encoder every few epochs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from mixbench.pretrain.knn import KNN_K, KNN_T


def checkpoint_meta(model, config_name: str) -> dict:
    """The checkpoint metadata of a MoCo/CMC model (plain python types, weights-only safe)."""
    if is_model_wrapper(model):
        model = model.module
    if not hasattr(model, "mixbench_meta"):
        raise TypeError(f"{type(model).__name__} has no mixbench_meta(); is it a pretrain.moco/cmc model?")
    return dataclasses.replace(model.mixbench_meta(), config_name=config_name).to_dict()


@HOOKS.register_module()
class MixbenchMetaHook(Hook):
    """Add ``meta['mixbench']``: method, arch, width, feature_dim, pixel_mean/std, color, mixture, config."""

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        filename = getattr(runner.cfg, "filename", None)
        config_name = Path(filename).stem if filename else runner.experiment_name
        meta = checkpoint.setdefault("meta", {})
        meta["mixbench"] = checkpoint_meta(runner.model, config_name)
        # how it was trained: precision (fp32/bf16/fp16), loss scaling, channels_last, cudnn benchmark, device
        meta["mixbench_run"] = dict(runner.cfg.get("mixbench_run") or {})


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """kNN top-1 of the live encoder on a labelled train/val folder pair, every ``interval`` epochs and at the end.

    Args:
        train_root, val_root: ImageNet-style split folders (``<root>/<wnid>/<image>``); default: the
            training set's root and its sibling ``val`` folder.
        interval: epochs between evaluations; None: only after the last epoch (follows ``max_epochs``).
        k, T: neighbours and temperature of the weighted vote (``pretrain.knn``).
        size: centre-crop size; batch_size, num_workers: of the feature-extraction loaders.
        before_train: also evaluate the encoder before the first step (the random-init reference).

    Runs on rank 0 only; the result is logged and stored in the message hub as ``knn/top1``.
    """

    priority = "LOW"

    def __init__(
        self,
        train_root: str | None = None,
        val_root: str | None = None,
        interval: int | None = 10,
        k: int = KNN_K,
        T: float = KNN_T,
        size: int = 224,
        batch_size: int = 64,
        num_workers: int = 2,
        before_train: bool = False,
    ) -> None:
        self.train_root, self.val_root = train_root, val_root
        self.interval, self.k, self.T = interval, k, T
        self.size, self.batch_size, self.num_workers = size, batch_size, num_workers
        self.eval_before_train = before_train

    def _loader(self, root: str):
        from torch.utils.data import DataLoader

        from mixbench.pretrain.data import ImageFolderViews, eval_collate

        ds = ImageFolderViews(root, aug="center", size=self.size, n_views=1)
        return DataLoader(ds, self.batch_size, num_workers=self.num_workers, collate_fn=eval_collate)

    def before_train(self, runner) -> None:
        if self.eval_before_train:
            self._evaluate(runner, "before training")

    def after_train_epoch(self, runner) -> None:
        if (self.interval and self.every_n_epochs(runner, self.interval)) or self.is_last_train_epoch(runner):
            self._evaluate(runner, f"epoch {runner.epoch + 1}")

    def _evaluate(self, runner, when: str) -> None:
        from mmengine.dist import is_main_process

        if not is_main_process():
            return
        from mixbench.pretrain.knn import knn_monitor

        train_root = self.train_root or runner.cfg.train_dataloader.dataset.root
        val_root = self.val_root or str(Path(train_root).parent / "val")
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        result = knn_monitor(model, self._loader(train_root), self._loader(val_root), self.k, self.T)
        runner.message_hub.update_scalar("knn/top1", result["top1"])  # not train/: kept out of iter logs
        runner.logger.info(
            f"kNN {when} (k={result['k']}, T={self.T}) top-1 {100 * result['top1']:.2f}% "
            f"({result['n_train']} train / {result['n_val']} val images)"
        )
