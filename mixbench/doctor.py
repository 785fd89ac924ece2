"""``mixbench doctor``: is the OpenMMLab stack usable here? Versions, mmcv's compiled ops, a tiny NMS/RoIAlign run.

mmcv's ops are checked against torchvision's independent implementations of the same operators, on the CPU and,
when one is visible, on the GPU. Exit code 0 only if everything mixbench needs works.
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Callable

FIX = (
    "Fix: run `make setup` (or `bash .ci/bootstrap.sh`) from the mixbench clone; it builds mmcv 2.1.0 with its "
    "compiled ops for this torch and caches the wheel. Remove a wrong mmcv first: `.venv/bin/pip uninstall -y mmcv "
    "mmcv-lite mmcv-full`."
)
REQUIRED = {"mmcv": "2.1.0", "mmdet": "3.3.0", "mmengine": "0.10.7"}


def _version(name: str) -> str | None:
    try:
        return importlib.import_module(name).__version__
    except Exception:  # any import failure means "not usable"; the message below says what to do
        return None


def _check_ops(device: str) -> None:
    import torch
    import torchvision
    from mmcv.ops import RoIAlign, nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(32, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(32, 2, generator=g) * 30], 1).to(device)
    scores = torch.rand(32, generator=g).to(device)
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    ref = torchvision.ops.nms(boxes, scores, 0.5)
    if not torch.equal(keep.cpu().sort().values, ref.cpu().sort().values):
        raise RuntimeError(f"mmcv.ops.nms on {device} disagrees with torchvision.ops.nms")

    feat = torch.rand(1, 4, 16, 16, generator=g).to(device)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 12.0], [0, 3.5, 2.0, 15.0, 8.5]], device=device)
    out = RoIAlign((3, 3), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feat, rois)
    ref = torchvision.ops.roi_align(feat, rois, (3, 3), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    if not torch.allclose(out, ref, atol=1e-5):
        raise RuntimeError(f"mmcv.ops.RoIAlign on {device} disagrees with torchvision.ops.roi_align")


def run_doctor(print_fn: Callable[[str], None] = print) -> int:
    """Print the stack report; return 0 if usable, 1 otherwise (with a fix-it message)."""
    import torch

    problems: list[str] = []
    print_fn(f"python       {platform.python_version()} ({platform.machine()})")
    print_fn(f"torch        {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}, "
             f"GPU visible: {torch.cuda.is_available()})")
    print_fn(f"torchvision  {_version('torchvision')}")
    for name, want in REQUIRED.items():
        got = _version(name)
        print_fn(f"{name:<12} {got}  (need {want})")
        if got != want:
            problems.append(f"{name} {want} is required, found {got or 'none (import failed)'}")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    try:
        from mmcv.ops import get_compiler_version, get_compiling_cuda_version

        cuda_ops = get_compiling_cuda_version()
        print_fn(f"mmcv ops     compiled ({get_compiler_version()}; CUDA ops: "
                 f"{'yes, CUDA ' + cuda_ops if cuda_ops not in ('', 'not available') else 'no (CPU only)'})")
        if torch.cuda.is_available() and cuda_ops in ("", "not available"):
            problems.append("a GPU is visible but mmcv was built without CUDA ops")
            devices = ["cpu"]
        for device in devices:
            _check_ops(device)
            print_fn(f"ops check    nms + RoIAlign on {device}: match torchvision")
    except Exception as err:  # ImportError (no mmcv._ext) or a numerical mismatch: both mean "not usable"
        problems.append(f"mmcv's compiled ops are not usable: {err}")

    if problems:
        for p in problems:
            print_fn(f"PROBLEM: {p}")
        print_fn(FIX)
        return 1
    print_fn("doctor: OK")
    return 0
