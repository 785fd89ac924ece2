"""Run records: one JSON file per (checkpoint, detector config, BN mode), written atomically.

A record is the only thing the tables read, so it carries everything needed to say where a number came from:
the checkpoint (name, file, sha256), the config (name, file, resolved key settings), the metrics as mmengine
reported them, seed, world size, hardware, package versions, git commit and wall time.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from mixbench.base.io import atomic_write_json

SCHEMA = "mixbench.transfer.record/1"
REQUIRED = ("schema", "checkpoint", "config", "suite", "detector", "bn_mode", "metrics", "status")
PACKAGES = ("torch", "torchvision", "mmengine", "mmcv", "mmdet", "numpy", "pycocotools", "mixbench")


def record_path(records_dir: str | Path, config_name: str, checkpoint_name: str) -> Path:
    """Where the record of one run lives: ``<records_dir>/<config name>/<checkpoint name>.json``."""
    return Path(records_dir) / config_name / f"{checkpoint_name}.json"


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    import os

    import torch

    info: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor() or None,
                            "cpu_count": os.cpu_count(), "python": platform.python_version(),
                            "cuda": torch.cuda.is_available()}
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


def write_record(path: str | Path, record: dict[str, Any]) -> Path:
    """Validate and write ``record`` atomically (a reader never sees a partial file)."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"{path}: run record lacks {missing}")
    return atomic_write_json(path, record)


def load_record(path: str | Path) -> dict[str, Any]:
    """Read one record; a clear error names the file when it is not a mixbench run record."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable run record ({err})") from None
    if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a mixbench transfer run record (schema {SCHEMA!r} expected)")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"{path}: run record lacks {missing}")
    return rec


def collect_records(paths: list[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Records from files and folders (searched recursively for ``*.json``), sorted by path."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.rglob("*.json")))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such record file or folder")
    return [(f, load_record(f)) for f in sorted(set(files))]


def is_complete(path: str | Path, run_key: dict[str, Any]) -> bool:
    """True when ``path`` holds a finished record of the same run key (:func:`mixbench.transfer.runner.run_key`:
    checkpoint sha256, config name and resolved-config digest, data root, seed, world size).

    A record from before run keys existed, or with any other key, is not complete: the run is redone.
    """
    try:
        rec = load_record(path)
    except (ValueError, FileNotFoundError):
        return False
    return rec["status"] == "complete" and rec.get("run_key") == run_key


def metrics_status(metrics: dict[str, Any]) -> tuple[str, str | None]:
    """``('complete', None)`` for finite metrics; ``('invalid', why)`` when one is NaN or inf (a diverged run).

    Tables show only complete records, so a diverged run is never printed as measured.
    """
    import math

    bad = sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))
    if bad:
        return "invalid", f"non-finite metrics {bad}: the run diverged"
    return "complete", None
