"""The detection suites, listed once: ``--suite voc|coco`` x ``--bn frozen|finetune`` -> mmdet leaf configs.

``paper``: the paper's protocol (R50-FPN, 1x schedule, full scale: VOC 1000x600, COCO 1333x800).
``demo``: the same detectors shrunk for CPU (R18-FPN, small images, short schedule) for the synthetic demo.
"""

from __future__ import annotations

from pathlib import Path

from mixbench.base.config import resolve_config

__all__ = ["BN_MODES", "DETECTORS", "SCALES", "SUITES", "suite_configs"]

BN_MODES = ("frozen", "finetune")
SCALES = ("paper", "demo")
_DETECTORS = {"voc": ("faster-rcnn",), "coco": ("retinanet", "mask-rcnn")}
DETECTORS = tuple(det for dets in _DETECTORS.values() for det in dets)  # config-name prefixes
_FILES = {
    ("paper", "voc"): "configs/transfer/voc0712/{det}_r50_fpn_{bn}-bn_1x_voc0712.py",
    ("paper", "coco"): "configs/transfer/coco/{det}_r50_fpn_{bn}-bn_1x_coco.py",
    ("demo", "voc"): "configs/transfer/demo/{det}_r18_fpn_{bn}-bn_demo_voc0712.py",
    ("demo", "coco"): "configs/transfer/demo/{det}_r18_fpn_{bn}-bn_demo_coco.py",
}
# scale -> suite -> BN mode -> config paths (relative to the repository / the shipped configs)
SUITES: dict[str, dict[str, dict[str, list[str]]]] = {
    scale: {
        suite: {bn: [_FILES[scale, suite].format(det=det, bn=bn) for det in dets] for bn in BN_MODES}
        for suite, dets in _DETECTORS.items()
    }
    for scale in SCALES
}


def suite_configs(suites: list[str], bn_modes: list[str], scale: str = "paper",
                  detectors: list[str] | None = None) -> list[Path]:
    """Config files of ``suites`` x ``bn_modes`` at ``scale``, in that order, resolved to existing files; with
    ``detectors``, only those detectors' configs."""
    if scale not in SUITES:
        raise ValueError(f"unknown suite scale {scale!r}; choose one of {SCALES}")
    bad = [s for s in suites if s not in SUITES[scale]] + [b for b in bn_modes if b not in BN_MODES]
    if bad:
        raise ValueError(f"unknown suite or BN mode {bad}; suites {list(SUITES[scale])}, BN modes {BN_MODES}")
    unknown = [d for d in detectors or [] if d not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector {unknown}; detectors {list(DETECTORS)}")
    return [resolve_config(c) for s in suites for b in bn_modes for c in SUITES[scale][s][b]
            if detectors is None or Path(c).name.split("_")[0] in detectors]
