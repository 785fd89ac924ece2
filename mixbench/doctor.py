"""``mixbench doctor``: is the OpenMMLab stack usable here? Versions, mmcv's compiled ops, a tiny NMS/RoIAlign run.

mmcv's ops are checked against torchvision's independent implementations of the same operators, on the CPU and,
when one is visible, on the GPU (there through whichever backend ``mixbench.transfer.ops_backend`` chose: mmcv's
CUDA kernels, or torchvision's stand-ins when mmcv was built without them). It prints which backend runs each op on
each device. Exit code 0 only if everything mixbench needs works.
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Callable
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

FIX = (
    "Fix: run `make setup` (or `bash .ci/bootstrap.sh`) from the mixbench clone; it builds the mmcv that "
    "mixbench/constraints.txt pins, with its compiled ops for this torch, and caches the wheel. Remove a wrong mmcv "
    "first: `.venv/bin/pip uninstall -y mmcv mmcv-lite mmcv-full`."
)
STACK = ("mmcv", "mmdet", "mmengine")  # checked against the tested versions
CONSTRAINTS = files("mixbench") / "constraints.txt"  # the pinned stack, shipped with the package


def read_pins(path: Path | Traversable = CONSTRAINTS) -> dict[str, str]:
    """The ``name==version`` lines of a pip constraints file: {canonical name: version}."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator == "==":
            pins[canonicalize_name(req.name)] = specs[0].version
    return pins


def required_versions(constraints: Path | Traversable = CONSTRAINTS) -> dict[str, str]:
    """Version specifiers :data:`STACK` must meet: ``==pin`` for each, from ``constraints``."""
    pins = read_pins(constraints)
    return {name: f"=={pins[name]}" for name in STACK}


def _version(name: str) -> str | None:
    try:
        return importlib.import_module(name).__version__
    except Exception:  # any import failure means "not usable"; the message below says what to do
        return None


def _check_ops(device: str, focal: bool = False) -> None:
    """mmcv's nms and RoIAlign (and, with ``focal``, sigmoid_focal_loss) on ``device`` against torchvision's."""
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
    if not focal:
        return  # on CPU mmcv has no focal loss kernel (mmdet uses its Python focal loss there)
    from mmcv.ops import sigmoid_focal_loss

    logits = torch.randn(16, 3, generator=g).to(device)
    labels = torch.randint(0, 4, (16,), generator=g).to(device)
    out = sigmoid_focal_loss(logits, labels, 2.0, 0.25, None, "sum")
    onehot = torch.nn.functional.one_hot(labels, 4)[:, :3].float()
    ref = torchvision.ops.sigmoid_focal_loss(logits, onehot, alpha=0.25, gamma=2.0, reduction="sum")
    if not torch.allclose(out, ref, rtol=1e-4):
        raise RuntimeError(f"mmcv.ops.sigmoid_focal_loss on {device} disagrees with torchvision's")


def run_doctor(print_fn: Callable[[str], None] = print, required: dict[str, str] | None = None) -> int:
    """Print the stack report; return 0 if usable, 1 otherwise (with a fix-it message).

    ``required``: version specifiers per package of :data:`STACK` (default :func:`required_versions`).
    """
    import torch
    from packaging.specifiers import SpecifierSet

    from mixbench import __version__

    problems: list[str] = []
    print_fn(f"mixbench     {__version__}")
    print_fn(f"python       {platform.python_version()} ({platform.machine()})")
    print_fn(f"torch        {torch.__version__} (CUDA build: {torch.version.cuda or 'no'}, "
             f"GPU visible: {torch.cuda.is_available()})")
    print_fn(f"torchvision  {_version('torchvision')}")
    for name, want in (required or required_versions()).items():
        got = _version(name)
        print_fn(f"{name:<12} {got}  (need {want})")
        if got is None or not SpecifierSet(want).contains(got, prereleases=True):
            problems.append(f"{name} {want} is required, found {got or 'none (import failed)'}")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    try:
        # Not mmcv.ops.get_compiler_version(): built as make setup builds it, against torch 2.11 on Python 3.12,
        # that call segfaulted on the lent H200 machine, while the ops themselves worked.
        from mmcv.ops import get_compiling_cuda_version

        from mixbench.transfer.ops_backend import configure

        cuda_ops = get_compiling_cuda_version()
        print_fn(f"mmcv ops     compiled (CUDA ops: "
                 f"{'yes, CUDA ' + cuda_ops if cuda_ops not in ('', 'not available') else 'no (CPU only)'})")
        table = configure()
        for op, row in table.items():
            print_fn(f"op backend   {op:<20} cpu: {row['cpu']:<13} cuda: {row['cuda']}"
                     + ("" if torch.cuda.is_available() else " (no GPU visible)"))
        for device in devices:
            _check_ops(device, focal=device != "cpu")
            what = "nms + RoIAlign" + (" + sigmoid_focal_loss" if device != "cpu" else "")
            backend = table["nms/batched_nms"][device]
            print_fn(f"ops check    {what} on {device}: match torchvision (backend: {backend})")
    except Exception as err:  # ImportError (no mmcv._ext) or a numerical mismatch: both mean "not usable"
        problems.append(f"mmcv's compiled ops are not usable: {err}")

    if problems:
        for p in problems:
            print_fn(f"PROBLEM: {p}")
        print_fn(FIX)
        return 1
    print_fn("doctor: OK")
    return 0
