"""mmcv's compiled ops on GPUs without mmcv CUDA kernels: route CUDA tensors of four ops to torchvision.

Faster R-CNN, RetinaNet and Mask R-CNN in mmdet 3.3 use four mmcv ops, and each reaches mmcv's compiled
extension ``mmcv._ext`` through one or two kernel functions:

============================  =====================================================  ===============================
mmcv op (who calls it)        ``mmcv._ext`` kernel(s) it calls                       torchvision stand-in (CUDA)
============================  =====================================================  ===============================
``mmcv.ops.nms``,             ``nms(boxes, scores, iou_threshold, offset)``          ``torchvision.ops.nms``
``mmcv.ops.batched_nms``      (batched_nms is mmcv Python over ``nms``: class
(RPN, dense heads,            offsets or a per-class loop, then the same kernel)
``multiclass_nms``)
``mmcv.ops.RoIAlign``         ``roi_align_forward`` / ``roi_align_backward``          ``torchvision.ops.roi_align``
(box and mask RoI             (avg pooling; ``aligned``, ``sampling_ratio`` as        (same ``aligned``/sampling
extractors), and              given)                                                 ratio) and its backward kernel
``mmcv.ops.roi_align``                                                               ``torchvision::_roi_align_
(mask targets in                                                                     backward``
``mmdet.structures.mask``)
``mmcv.ops.sigmoid_focal_     ``sigmoid_focal_loss_forward`` / ``_backward``          ``torchvision.ops.sigmoid_
loss`` (RetinaNet's           (element-wise loss of (N, C) logits, integer            focal_loss`` on one-hot
``FocalLoss`` on CUDA)        targets, C = background)                               targets; gradient by autograd
============================  =====================================================  ===============================

Routing happens at the kernel level: each of these ``mmcv._ext`` functions is replaced, once, by a dispatcher
that looks at the device of its tensors. So mmcv's own Python (its autograd Functions, ``batched_nms``' class
offsets, ``max_num``/``score_threshold`` handling, the focal loss reduction) is unchanged, and only the arithmetic
inside the kernel comes from torchvision, forward and backward.

The choice is made once per process by :func:`configure` (``mixbench transfer`` and ``mixbench doctor`` call it):

* CPU tensors: mmcv's compiled CPU kernels (mmcv has no CPU focal loss kernel: on CPU mmdet's ``FocalLoss`` uses
  its own Python focal loss, which never reaches mmcv);
* CUDA tensors: mmcv's CUDA kernels when this mmcv build has them, else torchvision;
* :func:`force_torchvision` (tests) routes CPU tensors to torchvision too, so the equivalence of the two routes is
  tested on CPU.

Any other ``mmcv._ext`` kernel called with a CUDA tensor while mmcv has no CUDA ops raises :class:`OpsBackendError`
naming the op and how to get it (build mmcv with CUDA ops); :func:`check_config_ops` says the same before a run
starts when a config names such an op. Why hand-written: neither mmcv nor mmdet can fall back to another kernel
provider, and torchvision's kernels (shipped in its CUDA wheels) are the independent, maintained implementation.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch

MMCV = "mmcv"
TORCHVISION = "torchvision"
MMDET_PYTHON = "mmdet-python"  # mmdet's own Python focal loss (what mmdet runs on CPU; mmcv has no CPU kernel)
FIX = ("build mmcv with CUDA ops: `MIXBENCH_MMCV_CUDA=1 bash .ci/bootstrap.sh` (needs a CUDA compiler, which it "
       "installs from the package index) and rerun")

# op name (as `mixbench doctor` and run records print it) -> the mmcv._ext kernels behind it
OPS: dict[str, tuple[str, ...]] = {
    "nms/batched_nms": ("nms",),
    "RoIAlign/roi_align": ("roi_align_forward", "roi_align_backward"),
    "sigmoid_focal_loss": ("sigmoid_focal_loss_forward", "sigmoid_focal_loss_backward"),
}
# mmdet config `type`s that name mmcv ops with no stand-in here (the common ones; the runtime guard catches the rest)
_OTHER_OP_TYPES = {
    "DCN", "DCNv2", "DeformConv2d", "DeformConv2dPack", "ModulatedDeformConv2d", "ModulatedDeformConv2dPack",
    "DeformRoIPool", "DeformRoIPoolPack", "ModulatedDeformRoIPoolPack", "RoIPool", "RoIAlignRotated", "CARAFE",
    "CARAFEPack", "soft_nms", "nms_rotated", "nms_match", "MultiScaleDeformableAttention", "PSAMask",
    "CrissCrossAttention", "MaskedConv2d", "SAConv2d", "SimpleRoIAlign", "PrRoIPool", "RiRoIAlignRotated",
    "softmax_focal_loss",
}
_ALLOWED_TYPES = {"nms", "RoIAlign", "roi_align", "SingleRoIExtractor", "GenericRoIExtractor"}


class OpsBackendError(RuntimeError):
    """An mmcv op cannot run on this device with this mmcv build; the message names the op and the fix."""


# ----------------------------------------------------------------------------------------------- torchvision kernels
# Each function takes exactly the arguments mmcv's Python passes to the mmcv._ext kernel it stands in for.
def _f32(t: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 tensors (``--amp``) in float32: torchvision's nms/RoIAlign kernels do not all take bf16, and
    the result is written back into mmcv's output tensor in its own dtype."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _tv_nms(bboxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, offset: int = 0) -> torch.Tensor:
    """mmcv ``nms``: (N, 4) boxes, (N,) scores -> kept indices, by decreasing score.

    mmcv's ``offset=1`` (legacy pixel convention: width = x2 - x1 + 1) is the same IoU as shifting x2, y2 by 1.
    """
    import torchvision

    bboxes = _f32(bboxes)
    if offset:
        bboxes = torch.cat([bboxes[:, :2], bboxes[:, 2:] + offset], dim=1)
    return torchvision.ops.nms(bboxes, scores.to(bboxes.dtype), float(iou_threshold))


def _tv_roi_align_forward(input: torch.Tensor, rois: torch.Tensor, output: torch.Tensor, argmax_y: torch.Tensor,
                          argmax_x: torch.Tensor, aligned_height: int, aligned_width: int, spatial_scale: float,
                          sampling_ratio: int, pool_mode: int, aligned: bool) -> None:
    """mmcv ``roi_align_forward``: input (N, C, H, W), rois (R, 5) -> writes output (R, C, h, w) in place."""
    import torchvision

    if pool_mode != 1:
        raise OpsBackendError(f"mmcv RoIAlign with pool_mode='max' has no torchvision stand-in (avg only); {FIX}")
    x = _f32(input)
    out = torchvision.ops.roi_align(x, rois.to(x.dtype), (aligned_height, aligned_width),
                                    spatial_scale=spatial_scale, sampling_ratio=sampling_ratio, aligned=aligned)
    output.copy_(out)


def _tv_roi_align_backward(grad_output: torch.Tensor, rois: torch.Tensor, argmax_y: torch.Tensor,
                           argmax_x: torch.Tensor, grad_input: torch.Tensor, aligned_height: int,
                           aligned_width: int, spatial_scale: float, sampling_ratio: int, pool_mode: int,
                           aligned: bool) -> None:
    """mmcv ``roi_align_backward``: grad_output (R, C, h, w) -> writes grad_input (N, C, H, W) in place."""
    import torchvision  # noqa: F401  (registers torch.ops.torchvision)

    if pool_mode != 1:
        raise OpsBackendError(f"mmcv RoIAlign with pool_mode='max' has no torchvision stand-in (avg only); {FIX}")
    n, c, h, w = grad_input.shape
    g = _f32(grad_output)
    grad = torch.ops.torchvision._roi_align_backward(
        g, rois.to(g.dtype), spatial_scale, aligned_height, aligned_width, n, c, h, w,
        sampling_ratio, aligned)
    grad_input.copy_(grad)


def _one_hot(target: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """mmcv's integer targets, ``num_classes`` meaning background -> (N, C) one-hot (background: all zeros)."""
    return torch.nn.functional.one_hot(target, num_classes + 1)[:, :num_classes].to(dtype)


def _check_focal_weight(weight: torch.Tensor) -> None:
    if weight.numel():  # mmdet passes None (it weights the element-wise loss itself); mmcv would index it by target
        raise OpsBackendError("mmcv sigmoid_focal_loss with a per-class weight has no torchvision stand-in; " + FIX)


def _tv_focal(input: torch.Tensor, target: torch.Tensor, gamma: float, alpha: float) -> torch.Tensor:
    import torchvision

    input = _f32(input)
    return torchvision.ops.sigmoid_focal_loss(input, _one_hot(target, input.size(1), input.dtype), alpha=alpha,
                                              gamma=gamma, reduction="none")


def _tv_sigmoid_focal_loss_forward(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                                   output: torch.Tensor, gamma: float, alpha: float) -> None:
    """mmcv ``sigmoid_focal_loss_forward``: logits (N, C), labels (N,) -> element-wise loss (N, C) in ``output``."""
    _check_focal_weight(weight)
    output.copy_(_tv_focal(input, target, gamma, alpha))


def _tv_sigmoid_focal_loss_backward(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                                    grad_input: torch.Tensor, gamma: float, alpha: float) -> None:
    """mmcv ``sigmoid_focal_loss_backward``: d loss_ij / d input_ij (N, C) in ``grad_input`` (mmcv then scales it)."""
    _check_focal_weight(weight)
    with torch.enable_grad():  # mmcv calls this inside autograd's backward, where grad mode is off
        x = input.detach().requires_grad_(True)
        # the loss is element-wise, so the gradient of its sum is each element's own derivative
        (grad,) = torch.autograd.grad(_tv_focal(x, target, gamma, alpha).sum(), x)
    grad_input.copy_(grad)


_TORCHVISION_KERNELS: dict[str, Callable[..., Any]] = {
    "nms": _tv_nms,
    "roi_align_forward": _tv_roi_align_forward,
    "roi_align_backward": _tv_roi_align_backward,
    "sigmoid_focal_loss_forward": _tv_sigmoid_focal_loss_forward,
    "sigmoid_focal_loss_backward": _tv_sigmoid_focal_loss_backward,
}


# ----------------------------------------------------------------------------------------------- routing
class _State:
    configured: bool = False
    mmcv_cuda_ops: bool = False
    cuda: str = MMCV  # backend for CUDA tensors of the four ops
    cpu: str = MMCV  # backend for CPU tensors (torchvision only under force_torchvision)


_STATE = _State()


def _first_tensor(args: tuple, kwargs: dict) -> torch.Tensor | None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            return a
    return None


def _is_cuda(t: torch.Tensor | None) -> bool:
    return t is not None and t.is_cuda


def _dispatcher(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        t = _first_tensor(args, kwargs)
        on_cuda = _is_cuda(t)
        route = _STATE.cuda if on_cuda else _STATE.cpu
        if route == TORCHVISION:
            tv = _TORCHVISION_KERNELS.get(name)
            if tv is not None:
                return tv(*args, **kwargs)
            if on_cuda and not _STATE.mmcv_cuda_ops:  # another mmcv op on a GPU, and mmcv has no CUDA kernels
                raise OpsBackendError(
                    f"mmcv op '{name}' was called on {t.device} but this mmcv build has no CUDA ops, and mixbench "
                    f"stands in (with torchvision) only for {', '.join(OPS)}. To run this config on a GPU, {FIX}.")
        return original(*args, **kwargs)

    dispatch.__mixbench_original__ = original  # type: ignore[attr-defined]
    return dispatch


def _install() -> None:
    """Wrap every kernel of ``mmcv._ext`` once (mmcv's op modules look them up on that module at each call)."""
    import mmcv._ext as ext

    for name in dir(ext):
        fn = getattr(ext, name)
        if name.startswith("_") or not callable(fn) or hasattr(fn, "__mixbench_original__"):
            continue
        setattr(ext, name, _dispatcher(name, fn))


def mmcv_has_cuda_ops() -> bool:
    """Whether this mmcv build compiled its CUDA kernels (mmcv reports the CUDA version it compiled against)."""
    from mmcv.ops import get_compiling_cuda_version

    return get_compiling_cuda_version() not in ("", "not available")


def configure(cuda_backend: str | None = None) -> dict[str, dict[str, str]]:
    """Choose the backends once for this process and install the dispatchers; returns :func:`backends`.

    Args:
        cuda_backend: None (default): mmcv's CUDA kernels when compiled, else torchvision. ``'torchvision'`` forces
            the stand-ins on CUDA even with mmcv CUDA ops (for comparing the two); ``'mmcv'`` requires mmcv's.
    """
    if not _STATE.configured:
        _STATE.mmcv_cuda_ops = mmcv_has_cuda_ops()
        _install()
        _STATE.configured = True
        _STATE.cuda = MMCV if _STATE.mmcv_cuda_ops else TORCHVISION
    if cuda_backend is not None:
        if cuda_backend not in (MMCV, TORCHVISION):
            raise ValueError(f"cuda_backend must be {MMCV!r} or {TORCHVISION!r}, got {cuda_backend!r}")
        if cuda_backend == MMCV and not _STATE.mmcv_cuda_ops:
            raise OpsBackendError(f"mmcv's CUDA ops were asked for but this mmcv build has none; {FIX}")
        _STATE.cuda = cuda_backend
    return backends()


def backends() -> dict[str, dict[str, str]]:
    """Which implementation runs each op on each device: ``{op: {'cpu': ..., 'cuda': ...}}`` (for doctor, records)."""
    if not _STATE.configured:
        configure()
    table = {}
    for op in OPS:
        cpu = _STATE.cpu
        if op == "sigmoid_focal_loss" and cpu == MMCV:
            cpu = MMDET_PYTHON  # mmdet's FocalLoss takes mmcv's op on CUDA tensors only
        table[op] = {"cpu": cpu, "cuda": _STATE.cuda}
    return table


@contextlib.contextmanager
def force_torchvision(cpu: bool = True) -> Iterator[None]:
    """Route the four ops to torchvision on every device (CPU tensors too) inside the block; for tests."""
    configure()
    saved = (_STATE.cpu, _STATE.cuda)
    _STATE.cuda = TORCHVISION
    if cpu:
        _STATE.cpu = TORCHVISION
    try:
        yield
    finally:
        _STATE.cpu, _STATE.cuda = saved


def _config_types(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            yield node["type"]
        for v in node.values():
            yield from _config_types(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _config_types(v)


def check_config_ops(model_cfg: Any, on_cuda: bool | None = None) -> None:
    """Raise :class:`OpsBackendError` when a model config names an mmcv op that cannot run on the GPU here.

    Only matters on CUDA with the torchvision stand-ins (mmcv without CUDA ops); ``on_cuda`` defaults to
    ``torch.cuda.is_available()``.
    """
    on_cuda = torch.cuda.is_available() if on_cuda is None else on_cuda
    configure()
    if not on_cuda or _STATE.mmcv_cuda_ops:  # CPU kernels, or mmcv's CUDA kernels, run every op
        return
    bad = sorted({t for t in _config_types(model_cfg) if t in _OTHER_OP_TYPES and t not in _ALLOWED_TYPES})
    if bad:
        raise OpsBackendError(
            f"the config uses mmcv op(s) {', '.join(bad)}, which this mmcv build cannot run on a GPU (it has no CUDA "
            f"ops; mixbench stands in with torchvision only for {', '.join(OPS)}). To run it, {FIX}.")
