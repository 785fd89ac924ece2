"""Recall as in Table 7 against a hand computation on a handful of boxes; AP50 stays mmdet's own."""

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


@pytest.mark.parametrize("eval_mode", ["11points", "area"])
def test_ap50_is_mmdet_vocmetric(eval_mode):
    from mmdet.evaluation.metrics import VOCMetric

    ref = VOCMetric(eval_mode=eval_mode)
    ref.dataset_meta = {"classes": CLASSES}
    ours = _metric(eval_mode=eval_mode).compute_metrics(results())
    theirs = ref.compute_metrics(results())
    assert ours["AP50"] == theirs["AP50"] and ours["mAP"] == theirs["mAP"]
    assert 0.0 < ours["AP50"] < 1.0


def test_optional_ap_5095_is_mean_over_ious():
    from mmdet.evaluation.functional import eval_map

    gts, preds = zip(*results())
    ref = np.mean([eval_map(list(preds), list(gts), iou_thr=t, logger="silent", use_legacy_coordinate=True,
                            eval_mode="11points")[0]
                   for t in np.arange(0.5, 0.951, 0.05)])
    assert _metric(ap_5095=True).compute_metrics(results())["AP"] == pytest.approx(ref)
    assert "AP" not in _metric().compute_metrics(results())


def test_recall_branch_refused():
    with pytest.raises(ValueError, match="metric='mAP'"):
        VOCRecallMetric(metric="recall")
