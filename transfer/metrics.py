"""VOC detection metrics of the paper's Table 7: AP50 (mmdet's VOCMetric) and Recall (ours).

Why hand-written: mmdet 3.3's ``VOCMetric`` computes AP only; its ``metric='recall'`` branch evaluates proposal
recall of the first class only (``pred[0]``) and cannot be combined with AP. The paper's Table 7 reports one Recall
per model next to AP50, so we define it once, here, and print the definition with every table:

    Recall = mean over classes with at least one (non-difficult) ground-truth box of the fraction of those boxes
             matched at IoU >= 0.5 by all detections of that class
           = mean_c recall_c[-1], with recall_c the per-class recall curve of ``mmdet.evaluation.functional.eval_map``
             (a class with ground truth but no detection has recall 0).

``transfer.tables.RECALL_DEFINITION`` prints this definition with every table.

AP50 stays mmdet's: 11-point interpolation by default (VOC2007 and mmdet 2's default), ``eval_mode='area'``
selectable. Optionally AP@[.5:.95] (mean over IoU 0.50:0.05:0.95, the COCO-style average) is added.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmdet.evaluation.functional import eval_map
from mmdet.evaluation.metrics import VOCMetric
from mmdet.registry import METRICS

COCO_IOUS = [round(0.5 + 0.05 * i, 2) for i in range(10)]


def class_recalls(per_class: Sequence[dict]) -> list[float | None]:
    """Per-class recall with all detections, from ``eval_map``'s per-class results.

    Args:
        per_class: ``eval_map(...)[1]``: one dict per class with ``num_gts`` (int) and ``recall``
            (np.ndarray, shape (num_dets,), cumulative over detections sorted by score).

    Returns:
        One value per class: the last recall point, 0.0 when the class has ground truth but no detection,
        ``None`` when the class has no ground truth (excluded from the mean).
    """
    out: list[float | None] = []
    for res in per_class:
        if int(np.asarray(res["num_gts"]).sum()) == 0:
            out.append(None)
            continue
        curve = np.asarray(res["recall"]).reshape(-1)
        out.append(float(curve[-1]) if curve.size else 0.0)
    return out


def mean_recall(per_class: Sequence[dict]) -> float:
    """Table 7's Recall: mean of :func:`class_recalls` over classes with ground truth (0.0 if there are none)."""
    values = [r for r in class_recalls(per_class) if r is not None]
    return float(np.mean(values)) if values else 0.0


@METRICS.register_module()
class VOCRecallMetric(VOCMetric):
    """mmdet's ``VOCMetric`` (AP50) plus the paper's Recall and, optionally, AP@[.5:.95].

    Reported keys (with mmengine's ``pascal_voc/`` prefix): ``mAP`` and ``AP50`` (mmdet's, at ``iou_thrs``),
    ``recall`` (:func:`mean_recall` at IoU 0.5), and with ``ap_5095=True`` also ``AP`` (mean AP over IoU
    0.50:0.05:0.95, same ``eval_mode``).

    Args:
        ap_5095: also report AP averaged over IoU 0.50:0.05:0.95.
        **kwargs: passed to ``VOCMetric`` (``eval_mode='11points'|'area'``, ``iou_thrs``, ...). Only
            ``metric='mAP'`` is accepted: mmdet's recall branch is what this class replaces.
    """

    def __init__(self, ap_5095: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.metric != "mAP":
            raise ValueError(
                f"VOCRecallMetric: metric={self.metric!r} is not supported; use metric='mAP' (Recall is always "
                "reported, computed as in the paper's Table 7)"
            )
        self.ap_5095 = ap_5095

    def _dataset_arg(self) -> str | list[str]:
        # The same `dataset` argument VOCMetric passes to eval_map (only used for its printed class names).
        if self.dataset_meta.get("dataset_type") in ("VOC2007", "VOC2012"):
            return "voc"
        return list(self.dataset_meta["classes"])

    def _eval(self, results: list, iou_thr: float) -> tuple[float, list[dict]]:
        gts, preds = zip(*results)
        # use_legacy_coordinate=True: VOC's "+1" box areas, exactly as VOCMetric calls eval_map.
        return eval_map(list(preds), list(gts), iou_thr=iou_thr, dataset=self._dataset_arg(), logger="silent",
                        eval_mode=self.eval_mode, use_legacy_coordinate=True)

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        _, per_class = self._eval(results, 0.5)
        metrics["recall"] = mean_recall(per_class)
        if self.ap_5095:
            metrics["AP"] = float(np.mean([self._eval(results, t)[0] for t in COCO_IOUS]))
        return metrics
