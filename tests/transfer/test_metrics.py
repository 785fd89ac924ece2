"""Recall (Table 7), AP50 and AP@[.5:.95] of VOCRecallMetric against hand computations on a handful of boxes."""

from __future__ import annotations

import numpy as np
import pytest

from mixbench.transfer.metrics import VOCRecallMetric, class_recalls

CLASSES = ("a", "b", "c", "d")


def _ann(boxes, labels, ignore=(), ignore_labels=()):
    return dict(bboxes=np.array(boxes, np.float32).reshape(-1, 4), labels=np.array(labels, np.int64),
                bboxes_ignore=np.array(ignore, np.float32).reshape(-1, 4),
                labels_ignore=np.array(ignore_labels, np.int64))


def _dets(per_class: dict[int, list]) -> list[np.ndarray]:
    return [np.array(per_class.get(c, []), np.float32).reshape(-1, 5) for c in range(len(CLASSES))]


def results() -> list:
    # VOC "legacy" coordinates: a box [x1, y1, x2, y2] covers (x2 - x1 + 1) x (y2 - y1 + 1) pixels.
    img1 = (
        _ann([[0, 0, 9, 9], [50, 50, 59, 59], [20, 20, 39, 39]], [0, 0, 1],
             ignore=[[70, 70, 79, 79]], ignore_labels=[1]),  # a difficult 'b': neither counted nor missed
        _dets({
            0: [[0, 0, 9, 9, 0.9],        # IoU 1 with the first 'a'             -> match
                [1, 1, 10, 10, 0.8],      # IoU 81/119 = 0.68 with the same 'a'  -> duplicate, no new match
                [100, 100, 109, 109, 0.7]],  # nothing there
            1: [[20, 20, 39, 39, 0.9],    # the 'b'                               -> match
                [70, 70, 79, 79, 0.95]],  # the difficult 'b'                     -> ignored
        }),
    )
    img2 = (
        _ann([[30, 0, 49, 19]], [3]),
        _dets({
            2: [[0, 0, 5, 5, 0.5]],        # class 'c' has no ground truth anywhere -> not in the mean
            3: [[30, 10, 49, 29, 0.9]],    # IoU 200/600 = 0.33 with the 'd'        -> miss
        }),
    )
    return [img1, img2]


# Hand computation: 'a' 1 of 2 boxes found, 'b' 1 of 1 (difficult excluded), 'c' no ground truth,
# 'd' 0 of 1  ->  Recall = mean(1/2, 1, 0) = 0.5.
HAND_CLASS_RECALLS = [0.5, 1.0, None, 0.0]
HAND_RECALL = (0.5 + 1.0 + 0.0) / 3


def _metric(**kw) -> VOCRecallMetric:
    m = VOCRecallMetric(**kw)
    m.dataset_meta = {"classes": CLASSES}
    return m


def test_recall_matches_hand_computation():
    from mmdet.evaluation.functional import eval_map

    gts, preds = zip(*results())
    _, per_class = eval_map(list(preds), list(gts), iou_thr=0.5, logger="silent", use_legacy_coordinate=True)
    assert class_recalls(per_class) == pytest.approx(HAND_CLASS_RECALLS)
    metrics = _metric().compute_metrics(results())
    assert metrics["recall"] == pytest.approx(HAND_RECALL)


# Hand computation of AP50 on results(): 'a' ranks TP, FP, FP over 2 boxes (recall 1/2 at precision 1), 'b' its TP
# (the detection on the difficult box is neither TP nor FP), 'd' one FP; 'c' has no ground truth (not in the mean).
# 11 points: 'a' reaches precision 1 at recall >= 0, 0.1, ..., 0.5 (6 of 11 points); area: 'a' 1/2 x 1.
HAND_AP50 = {"11points": (6 / 11 + 1.0 + 0.0) / 3, "area": (0.5 + 1.0 + 0.0) / 3}


@pytest.mark.parametrize("eval_mode", ["11points", "area"])
def test_ap50_matches_hand_computation(eval_mode):
    metrics = _metric(eval_mode=eval_mode).compute_metrics(results())
    assert metrics["mAP"] == pytest.approx(HAND_AP50[eval_mode])
    assert metrics["AP50"] == pytest.approx(HAND_AP50[eval_mode], abs=5e-4)  # mmdet rounds AP50 to 3 decimals


def test_optional_ap_5095_matches_hand_computation():
    # One image: 'a' found exactly (AP 1 at every IoU threshold); 'b' found at IoU 30 x 23 / 30 x 30 = 0.767, a true
    # positive at the thresholds 0.50 ... 0.75 (6 of 10) and a miss above. AP@[.5:.95] = (10 x 1 + 6 x 1) / 20.
    gt = _ann([[0, 0, 29, 29], [40, 40, 69, 69]], [0, 1])
    dets = _dets({0: [[0, 0, 29, 29, 0.9]], 1: [[40, 40, 69, 62, 0.9]]})
    metrics = _metric(ap_5095=True).compute_metrics([(gt, dets)])
    assert metrics["AP"] == pytest.approx(0.8)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert "AP" not in _metric().compute_metrics(results())


def test_recall_branch_refused():
    with pytest.raises(ValueError, match="metric='mAP'"):
        VOCRecallMetric(metric="recall")
