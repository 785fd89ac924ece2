"""The paper's published detection numbers (Tables 7 and 8), as data, for ``mixbench table --paper``.

Copied from "Rethinking Image Mixture for Unsupervised Visual Representation Learning", section 4.3
(``../shared/paper/rethinking-image-mixture.txt``). Every row says its source table; ``None`` is the paper's "—".
Values are percentages, as printed in the paper. These rows are never mixed with measured ones without the
``source`` column saying ``paper``.
"""

from __future__ import annotations

PAPER = "Rethinking Image Mixture (paper)"

_T7 = "paper Table 7: Faster R-CNN R50-FPN, VOC trainval07+12 -> test2007, 1000x600, 12 epochs; MoCo K=16384"
_T8 = "paper Table 8: R50-FPN, COCO train2017 -> val2017, 1333x800, lr 0.02, 12 epochs; MoCo K=16384"

# What a measured run must share with the paper for its rows to stand in one table with the paper's (the settings
# keys of a run record); anything else (e.g. the R18 CPU demo) gets the paper's rows in a block of their own.
PAPER_PROTOCOL: dict[str, dict] = {
    "voc": {"backbone": "R50", "train_scale": [1000, 600], "epochs": 12},
    "coco": {"backbone": "R50", "train_scale": [1333, 800], "epochs": 12},
}

# (suite, detector, bn_mode) -> rows; metric names are the table columns of transfer.tables.
PAPER_ROWS: list[dict] = [
    # Table 7(a): "No Freeze" (BN fine-tuned).
    {"source_table": "7a", "protocol": _T7, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "finetune",
     "pretrain": "random init. [19] (R50-dilated-C5, 18 epochs)", "metrics": {"AP50": 58.0, "Recall": None}},
    {"source_table": "7a", "protocol": _T7, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "finetune",
     "pretrain": "MoCo", "metrics": {"AP50": 75.1, "Recall": 90.2}},
    {"source_table": "7a", "protocol": _T7, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "finetune",
     "pretrain": "Ours (K=16384)", "metrics": {"AP50": 75.8, "Recall": 90.7}},
    {"source_table": "7a", "protocol": _T7, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "finetune",
     "pretrain": "Ours (K=65536)", "metrics": {"AP50": 76.4, "Recall": 90.5}},
    # Table 7(b): "Freeze BN".
    {"source_table": "7b", "protocol": _T7, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
     "pretrain": "random init.", "metrics": {"AP50": None, "Recall": None}},
    {"source_table": "7b", "protocol": _T7, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
     "pretrain": "MoCo", "metrics": {"AP50": 72.7, "Recall": 92.3}},
    {"source_table": "7b", "protocol": _T7, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
     "pretrain": "Ours (K=16384)", "metrics": {"AP50": 73.3, "Recall": 92.8}},
    {"source_table": "7b", "protocol": _T7, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
     "pretrain": "Ours (K=65536)", "metrics": {"AP50": 73.8, "Recall": 93.3}},
    # Table 8(a): RetinaNet, Freeze BN.
    {"source_table": "8a", "protocol": _T8, "suite": "coco", "detector": "RetinaNet", "bn_mode": "frozen",
     "pretrain": "MoCo", "metrics": {"AP": 30.7, "AP50": 48.2, "AP75": 32.7, "APs": 15.7, "APm": 33.5, "APl": 40.7}},
    {"source_table": "8a", "protocol": _T8, "suite": "coco", "detector": "RetinaNet", "bn_mode": "frozen",
     "pretrain": "Ours (K=16384)",
     "metrics": {"AP": 31.8, "AP50": 49.8, "AP75": 34.2, "APs": 16.7, "APm": 34.7, "APl": 42.2}},
    {"source_table": "8a", "protocol": _T8, "suite": "coco", "detector": "RetinaNet", "bn_mode": "frozen",
     "pretrain": "Ours (K=65536)",
     "metrics": {"AP": 31.9, "AP50": 50.2, "AP75": 34.1, "APs": 16.5, "APm": 35.0, "APl": 41.7}},
    # Table 8(b): Mask R-CNN, Freeze BN.
    {"source_table": "8b", "protocol": _T8, "suite": "coco", "detector": "Mask R-CNN", "bn_mode": "frozen",
     "pretrain": "MoCo",
     "metrics": {"AP^bb": 31.2, "AP50^bb": 51.3, "AP75^bb": 33.3, "AP^mk": 29.1, "AP50^mk": 48.2, "AP75^mk": 30.6}},
    {"source_table": "8b", "protocol": _T8, "suite": "coco", "detector": "Mask R-CNN", "bn_mode": "frozen",
     "pretrain": "Ours (K=16384)",
     "metrics": {"AP^bb": 32.8, "AP50^bb": 53.3, "AP75^bb": 35.1, "AP^mk": 30.3, "AP50^mk": 50.1, "AP75^mk": 32.1}},
    {"source_table": "8b", "protocol": _T8, "suite": "coco", "detector": "Mask R-CNN", "bn_mode": "frozen",
     "pretrain": "Ours (K=65536)",
     "metrics": {"AP^bb": 33.7, "AP50^bb": 54.4, "AP75^bb": 36.5, "AP^mk": 31.1, "AP50^mk": 51.3, "AP75^mk": 32.7}},
]
