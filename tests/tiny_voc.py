"""The demo VOC detector shrunk to run the whole transfer path in seconds on the tiny synthetic set: 128x96 images,
no loader workers. Tests that run real transfers take these options (and add their own schedule); a paper VOC config
takes PAPER_AT_TINY_SCALE as well."""

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
# The paper's VOC config on these tiny images: an R18 backbone and the demo's proposal and RoI counts (the paper's
# 1000 proposals and 512 sampled RoIs per image dominate a CPU step); the same code path at a fraction of the time.
# Its validation (which mmengine runs after the last epoch, whatever val_interval says) on the same small images.
PAPER_AT_TINY_SCALE = ["model.backbone.depth=18", "model.neck.in_channels=[64,128,256,512]",
                       "model.train_cfg.rpn_proposal.nms_pre=300", "model.train_cfg.rpn_proposal.max_per_img=100",
                       "model.test_cfg.rpn.nms_pre=300", "model.test_cfg.rpn.max_per_img=100",
                       "model.train_cfg.rcnn.sampler.num=64", *TINY_VOC,
                       "val_dataloader.dataset.pipeline.1.scale=(128,96)", "val_dataloader.num_workers=0",
                       "val_dataloader.persistent_workers=False"]
