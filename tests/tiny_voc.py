"""The demo VOC detector shrunk to run the whole transfer path in seconds on the tiny synthetic set: 128x96 images,
no loader workers. Tests that run real transfers take these options (and add their own schedule)."""

from __future__ import annotations

from pathlib import Path

DEMO_VOC = Path(__file__).resolve().parents[1] / "configs/transfer/demo/faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py"
TINY_VOC = ["train_dataloader.dataset.dataset.datasets.0.pipeline.2.scale=(128,96)",
            "train_dataloader.dataset.dataset.datasets.1.pipeline.2.scale=(128,96)",
            "test_dataloader.dataset.pipeline.1.scale=(128,96)",
            "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
            "test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False"]
# One epoch over the training set once: the cheapest run that trains and tests.
ONE_EPOCH = ["train_cfg.max_epochs=1", "train_dataloader.dataset.times=1"]
