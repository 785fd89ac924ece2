"""Where a result came from: git commit, hardware and package versions, stored in every run record and result."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "git_commit", "hardware", "package_versions", "provenance"]

PACKAGES = ("torch", "torchvision", "mmengine", "mmcv", "mmdet", "numpy", "pycocotools", "mixbench")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None where one is not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    """CPU architecture, core count, the CPU kernels torch runs (its vector ISA, and oneDNN's cap where one is set:
    other kernels give other float results), Python version and the GPUs torch sees."""
    import torch

    info: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor() or None,
                            "cpu_count": os.cpu_count(), "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
                            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or None,
                            "python": platform.python_version(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def git_commit(repo: str | Path | None = None) -> str | None:
    """The repository's HEAD commit (with ``-dirty`` when the tree has changes), or None outside git."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent  # git finds the work tree from any folder in it
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict[str, Any]:
    """``{'hardware', 'packages', 'git_commit'}``: the fields a run record or result file carries about its origin."""
    return {"hardware": hardware(), "packages": package_versions(), "git_commit": git_commit()}
