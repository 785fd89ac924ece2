"""Faster R-CNN, RetinaNet and Mask R-CNN (R18-FPN, tiny images) under both op routes: same losses, same detections.

Each detector is built once from our demo configs (random init, no download) and run twice on the same batch with
the same random state: with mmcv's compiled CPU kernels, then with the torchvision stand-ins of
``mixbench.transfer.ops_backend`` forced onto CPU tensors. RetinaNet's focal loss: on CPU mmdet runs its Python focal
loss and never reaches mmcv's op; in the forced run the loss is sent through mmcv's op (as mmdet does on CUDA), so
the stand-in is what computes it. Tolerance: losses and input gradients within rtol 1e-5 / atol 1e-6 (float32
summation order), detections: same labels, boxes and scores within 1e-4, masks identical after binarisation.
"""

from __future__ import annotations

import copy

import mmcv.ops  # noqa: F401  (mmcv's compiled ops are required: a build without them fails here)
import pytest
import torch

from mixbench.transfer import ops_backend

DEMO = "configs/transfer/demo/"
CONFIGS = {  # config, with masks
    "faster-rcnn": (DEMO + "faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py", False),
    "retinanet": (DEMO + "retinanet_r18_fpn_frozen-bn_demo_coco.py", False),
    "mask-rcnn": (DEMO + "mask-rcnn_r18_fpn_frozen-bn_demo_coco.py", True),
}


def _num_classes(model_cfg) -> int:
    """The classes the detector's box head predicts (the demo RetinaNet has 6, the others their data set's)."""
    head = model_cfg.bbox_head if "bbox_head" in model_cfg else model_cfg.roi_head.bbox_head
    return head.num_classes


def _via_mmcv_op(pred, target, weight=None, gamma=2.0, alpha=0.25, reduction="mean", avg_factor=None):
    """mmdet's CUDA branch of FocalLoss (mmcv's op on integer labels), reached from its CPU branch's one-hot target."""
    from mmdet.models.losses import focal_loss

    labels = torch.where(target.any(1), target.argmax(1), torch.full_like(target[:, 0], target.size(1))).long()
    return focal_loss.sigmoid_focal_loss(pred, labels, weight, gamma, alpha, reduction, avg_factor)


def _run(model, data, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, list]:
    torch.manual_seed(seed)  # RPN/RoI samplers draw from torch's generator
    model.train()
    batch = model.data_preprocessor(copy.deepcopy(data), True)
    inputs = batch["inputs"].requires_grad_(True)
    losses = model.loss(inputs, batch["data_samples"])
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v) for v in losses.values())
    (grad,) = torch.autograd.grad(total, inputs)
    model.eval()
    with torch.no_grad():
        batch = model.data_preprocessor(copy.deepcopy(data), False)
        preds = model.predict(batch["inputs"], batch["data_samples"])
    losses = {k: (v if isinstance(v, torch.Tensor) else torch.stack(list(v))).detach() for k, v in losses.items()}
    return losses, grad, [p.pred_instances for p in preds]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_detector_same_losses_and_detections_under_both_routes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmdet.models.losses import focal_loss
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    path, with_mask = CONFIGS[name]
    cfg = Config.fromfile(path)
    if "rcnn" in cfg.model.test_cfg:  # random init: keep every box so the detections compared are not empty
        cfg.model.test_cfg.rcnn.score_thr = 0.0
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 96, 128), (3, 80, 112)], num_items=[3, 2],
                          num_classes=_num_classes(cfg.model), with_mask=with_mask)
    ops_backend.configure()
    ref_losses, ref_grad, ref_dets = _run(model, data, seed=1)
    calls: dict[str, int] = {}
    for kernel, fn in ops_backend._TORCHVISION_KERNELS.items():  # count what the stand-ins computed

        def counted(*args, _k=kernel, _fn=fn, **kwargs):
            calls[_k] = calls.get(_k, 0) + 1
            return _fn(*args, **kwargs)

        monkeypatch.setitem(ops_backend._TORCHVISION_KERNELS, kernel, counted)
    with ops_backend.force_torchvision():
        if name == "retinanet":
            monkeypatch.setattr(focal_loss, "py_sigmoid_focal_loss", _via_mmcv_op)
        losses, grad, dets = _run(model, data, seed=1)
    monkeypatch.undo()
    want = {"nms"} | ({"sigmoid_focal_loss_forward", "sigmoid_focal_loss_backward"} if name == "retinanet"
                      else {"roi_align_forward", "roi_align_backward"})
    assert want <= set(calls), f"stand-ins not reached: {want - set(calls)}"

    assert set(losses) == set(ref_losses) and len(losses) >= 2
    for k in ref_losses:
        torch.testing.assert_close(losses[k], ref_losses[k], rtol=1e-5, atol=1e-6, msg=f"{name} {k}")
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)
    assert ref_grad.abs().sum() > 0
    n_dets = 0
    for ref, got in zip(ref_dets, dets):
        assert torch.equal(got.labels, ref.labels)
        torch.testing.assert_close(got.bboxes, ref.bboxes, rtol=0, atol=1e-4)
        torch.testing.assert_close(got.scores, ref.scores, rtol=0, atol=1e-4)
        if with_mask:
            assert torch.equal(got.masks, ref.masks)
        n_dets += len(ref.labels)
    assert n_dets > 0  # the comparison covered real detections (nms ran on something)


@pytest.mark.parametrize("name", ["retinanet", "mask-rcnn"])
def test_bf16_autocast_trains_through_the_stand_ins(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """--amp on a GPU hands bf16 tensors to the stand-ins; CPU autocast forces that path: finite losses, gradients."""
    from mmdet.models.losses import focal_loss
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    path, with_mask = CONFIGS[name]
    torch.manual_seed(0)
    model_cfg = Config.fromfile(path).model
    model = MODELS.build(model_cfg)
    model.init_weights()
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 96, 128), (3, 80, 112)], num_items=[3, 2],
                          num_classes=_num_classes(model_cfg), with_mask=with_mask)
    monkeypatch.setattr(focal_loss, "py_sigmoid_focal_loss", _via_mmcv_op)
    with ops_backend.force_torchvision(), torch.autocast("cpu", dtype=torch.bfloat16):
        batch = model.data_preprocessor(data, True)
        losses = model.loss(batch["inputs"], batch["data_samples"])
        total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v) for v in losses.values())
        total.backward()
    assert torch.isfinite(total)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
