"""The torchvision stand-ins for mmcv's four ops equal mmcv's compiled CPU kernels (forced onto CPU tensors).

On a GPU without mmcv CUDA ops, ``mixbench.transfer.ops_backend`` sends CUDA tensors of nms/batched_nms,
RoIAlign/roi_align and sigmoid_focal_loss to torchvision. Here the same routing is forced on CPU tensors and
compared with mmcv's compiled CPU kernels (and, for the focal loss, which mmcv has no CPU kernel for, with mmdet's
Python focal loss, the implementation mmdet runs on CPU). Exactness: nms/batched_nms keep the same indices;
RoIAlign outputs and input gradients agree to 1e-6 (bit for bit where measured); focal loss to 1e-6.
"""

from __future__ import annotations

import pytest
import torch
from mmcv.ops import RoIAlign, batched_nms, nms, roi_align, sigmoid_focal_loss

from mixbench.transfer import ops_backend
from mixbench.transfer.ops_backend import OpsBackendError, force_torchvision


def _boxes(n: int, seed: int, size: float = 60.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = 4 + torch.rand(n, 2, generator=g) * size / 2
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


def _both(fn):
    """fn() with mmcv's compiled CPU kernels, then with the torchvision stand-ins forced onto CPU tensors."""
    ops_backend.configure()
    ref = fn()
    with force_torchvision():
        got = fn()
    return ref, got


# ----------------------------------------------------------------------------------------------- nms
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("offset", [0, 1])
def test_nms_keeps_the_same_indices(thr: float, offset: int) -> None:
    boxes, scores = _boxes(300, seed=int(thr * 10) + offset)
    (ref_dets, ref_keep), (dets, keep) = _both(lambda: nms(boxes, scores, thr, offset=offset))
    assert torch.equal(ref_keep, keep)
    assert torch.equal(ref_dets, dets)
    assert 0 < len(keep) < len(boxes)  # the threshold suppressed something and kept something


def test_nms_iou_exactly_at_threshold_and_ties() -> None:
    # B overlaps A with IoU exactly 0.5 (50 / 100 in binary floats): mmcv and torchvision suppress only IoU > thr,
    # so both are kept. C duplicates A with the same score (a tie): one of the two is suppressed.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 10.0],
                          [20.0, 20.0, 30.0, 30.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.9, 0.5, 0.5])
    (_, ref_keep), (_, keep) = _both(lambda: nms(boxes, scores, 0.5))
    assert torch.equal(ref_keep, keep)
    assert len(keep) == 3  # hand count: {A or C}, B, {D or E}
    assert 1 in keep.tolist()


def test_batched_nms_across_classes() -> None:
    boxes, scores = _boxes(400, seed=3)
    idxs = torch.randint(0, 7, (400,), generator=torch.Generator().manual_seed(4))
    cfg = dict(type="nms", iou_threshold=0.5)
    (ref_dets, ref_keep), (dets, keep) = _both(lambda: batched_nms(boxes, scores, idxs, cfg))
    assert torch.equal(ref_keep, keep)
    assert torch.equal(ref_dets, dets)
    import torchvision  # an independent reference: torchvision's own batched_nms keeps the same set

    tv = torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep.sort().values, tv.sort().values)
    # the per-class loop branch of mmcv's batched_nms (over split_thr boxes) goes through the same kernel
    cfg_split = dict(cfg, split_thr=100)
    (_, ref_keep2), (_, keep2) = _both(lambda: batched_nms(boxes, scores, idxs, cfg_split))
    assert torch.equal(ref_keep2, keep2)


# ----------------------------------------------------------------------------------------------- RoIAlign
def _rois() -> torch.Tensor:
    # inside, touching the borders, partly outside, fully outside, tiny (under one bin), second image
    return torch.tensor([[0, 1.0, 1.0, 9.0, 12.0], [0, 0.0, 0.0, 31.0, 23.0], [1, -6.0, -3.0, 8.0, 10.0],
                         [1, 25.0, 18.0, 44.0, 40.0], [0, 40.0, 30.0, 50.0, 36.0], [1, 3.3, 4.7, 3.9, 5.1],
                         [0, 10.5, 2.25, 27.75, 19.5]])


@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.25])
def test_roi_align_forward_and_input_gradient(sampling_ratio: int, spatial_scale: float) -> None:
    g = torch.Generator().manual_seed(5)
    feat = torch.rand(2, 3, 24, 32, generator=g)
    rois = _rois()
    rois[:, 1:] /= spatial_scale  # image coordinates of the same feature-map positions
    grad_out = torch.rand(len(rois), 3, 7, 7, generator=g)

    def run():
        x = feat.clone().requires_grad_(True)
        out = RoIAlign((7, 7), spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, aligned=True)(x, rois)
        out.backward(grad_out)
        return out.detach(), x.grad

    (ref_out, ref_grad), (out, grad) = _both(run)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-6)
    assert ref_out.abs().sum() > 0 and ref_grad.abs().sum() > 0


def test_roi_align_not_aligned_and_max_pool() -> None:
    feat = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(6))
    (ref,), (got,) = _both(lambda: (roi_align(feat, _rois(), (5, 5), 0.5, 2, "avg", False),))
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    with force_torchvision(), pytest.raises(OpsBackendError, match="pool_mode='max'.*MIXBENCH_MMCV_CUDA=1"):
        roi_align(feat, _rois(), (5, 5), 0.5, 2, "max", True)


def test_mask_targets() -> None:
    """mmdet's mask targets (``BitmapMasks.crop_and_resize`` -> mmcv ``roi_align``), as Mask R-CNN computes them."""
    from mmdet.structures.mask import BitmapMasks

    g = torch.Generator().manual_seed(7)
    masks = BitmapMasks((torch.rand(4, 40, 56, generator=g) > 0.5).numpy().astype("uint8"), 40, 56)
    bboxes = torch.tensor([[2.0, 3.0, 30.0, 33.0], [0.0, 0.0, 56.0, 40.0], [-4.0, 10.0, 20.0, 45.0],
                           [40.5, 12.25, 55.5, 39.75], [5.0, 5.0, 9.0, 8.0]]).numpy()
    inds = torch.tensor([0, 1, 2, 3, 1]).numpy()
    (ref,), (got,) = _both(lambda: (torch.from_numpy(
        masks.crop_and_resize(bboxes, (28, 28), inds, device="cpu", binarize=False).to_ndarray()),))
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    assert 0 < ref.mean() < 1


# ----------------------------------------------------------------------------------------------- focal loss
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, 0.25), (1.5, 0.5)])
def test_sigmoid_focal_loss_value_and_gradient(reduction: str, gamma: float, alpha: float) -> None:
    """mmcv's op, forced to torchvision on CPU, against mmdet's Python focal loss (mmcv has no CPU kernel)."""
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

    g = torch.Generator().manual_seed(8)
    num_classes = 5
    logits = torch.randn(64, num_classes, generator=g) * 4
    labels = torch.randint(0, num_classes + 1, (64,), generator=g)  # num_classes = background
    assert (labels == num_classes).any()
    onehot = torch.nn.functional.one_hot(labels, num_classes + 1)[:, :num_classes].float()

    x_ref = logits.clone().requires_grad_(True)
    ref = py_sigmoid_focal_loss(x_ref, onehot, gamma=gamma, alpha=alpha, reduction=reduction)
    # mmcv's 'mean' divides by N rows (mmdet's Python by N * C elements); compare the element sums
    if reduction == "mean":
        ref = ref * num_classes
    w = torch.rand(ref.shape, generator=g)
    (ref * w).sum().backward()
    x = logits.clone().requires_grad_(True)
    with force_torchvision():  # the backward kernel runs under the route too
        got = sigmoid_focal_loss(x, labels, gamma, alpha, None, reduction)
        (got * w).sum().backward()
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-7)


def test_focal_loss_without_the_route_is_mmcvs_missing_cpu_kernel() -> None:
    """The reason the forced route is needed for the comparison: mmcv has no CPU focal loss kernel."""
    ops_backend.configure()
    with pytest.raises(RuntimeError, match="not found|cpu"):
        sigmoid_focal_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]), 2.0, 0.25, None, "mean")


# ----------------------------------------------------------------------------------------------- routing
def test_routing_table_and_cpu_default() -> None:
    table = ops_backend.configure()
    assert set(table) == {"nms/batched_nms", "RoIAlign/roi_align", "sigmoid_focal_loss"}
    assert table["nms/batched_nms"]["cpu"] == "mmcv"
    assert table["sigmoid_focal_loss"]["cpu"] == "mmdet-python"
    want_cuda = "mmcv" if ops_backend.mmcv_has_cuda_ops() else "torchvision"
    assert {row["cuda"] for row in table.values()} == {want_cuda}
    with force_torchvision():
        assert {d for row in ops_backend.backends().values() for d in row.values()} == {"torchvision"}
    assert ops_backend.backends() == table  # restored


def test_other_mmcv_op_on_cuda_names_the_op_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any other mmcv kernel on a CUDA tensor (forced: every tensor counts as CUDA) fails with the op's name."""
    import mmcv._ext as ext
    from mmcv.ops import DeformConv2d

    ops_backend.configure()
    assert hasattr(ext.deform_conv_forward, "__mixbench_original__")
    monkeypatch.setattr(ops_backend, "_is_cuda", lambda t: True)
    conv = DeformConv2d(2, 2, 3, padding=1)
    with force_torchvision(), pytest.raises(OpsBackendError, match="deform_conv_forward.*MIXBENCH_MMCV_CUDA=1"):
        conv(torch.rand(1, 2, 6, 6), torch.zeros(1, 18, 6, 6))


def test_other_ops_use_mmcvs_cuda_kernels_when_the_build_has_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins forced for a comparison on a build WITH CUDA ops: other ops still reach mmcv's own kernels."""
    from mmcv.ops import DeformConv2d

    ops_backend.configure()
    monkeypatch.setattr(ops_backend, "_is_cuda", lambda t: True)
    monkeypatch.setattr(ops_backend._STATE, "mmcv_cuda_ops", True)
    conv = DeformConv2d(2, 2, 3, padding=1)
    with force_torchvision():
        out = conv(torch.rand(1, 2, 6, 6), torch.zeros(1, 18, 6, 6))  # (here: mmcv's CPU kernel, the original)
        ops_backend.check_config_ops({"type": "DCNv2"}, on_cuda=True)  # no error either
    assert out.shape == (1, 2, 6, 6)


def test_config_check_names_unsupported_ops() -> None:
    from mmengine.config import Config

    from mixbench.transfer.suites import suite_configs

    with force_torchvision():
        for path in suite_configs(["voc", "coco"], ["frozen", "finetune"]):
            ops_backend.check_config_ops(Config.fromfile(str(path)).model, on_cuda=True)  # ours pass
        dcn = {"type": "MaskRCNN", "backbone": {"type": "ResNet", "dcn": {"type": "DCNv2"}}}
        with pytest.raises(OpsBackendError, match="DCNv2.*MIXBENCH_MMCV_CUDA=1"):
            ops_backend.check_config_ops(dcn, on_cuda=True)
        ops_backend.check_config_ops(dcn, on_cuda=False)  # CPU: mmcv's CPU kernels run it


def test_half_precision_inputs_are_computed_in_float32() -> None:
    """Under --amp mmcv hands bf16/fp16 tensors to the kernels; the stand-ins compute in fp32 and write back."""
    feat = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(9))
    boxes, scores = _boxes(100, seed=10)
    with force_torchvision():
        ref = roi_align(feat, _rois(), (5, 5), 0.5, 2, "avg", True)
        _, ref_keep = nms(boxes, scores, 0.5)
        for dtype in (torch.bfloat16, torch.float16):
            x = feat.to(dtype).requires_grad_(True)
            out = roi_align(x, _rois().to(dtype), (5, 5), 0.5, 2, "avg", True)
            out.float().sum().backward()
            assert out.dtype == dtype and x.grad.dtype == dtype
            torch.testing.assert_close(out.float(), ref, rtol=0, atol=2e-2)
            _, keep = nms(boxes.to(dtype), scores.to(dtype), 0.5)
            assert len(set(keep.tolist()) ^ set(ref_keep.tolist())) <= 4  # rounding moves only near-ties
