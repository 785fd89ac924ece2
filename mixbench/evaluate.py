"""Checkpoint files -> frozen feature extractors, for linear eval, kNN and the flatness analysis.

This is where the two stages meet: ``mixbench.convert`` reads any file layout it knows into one checked torchvision
ResNet (CMC's halves folded into one RGB network whose features are the concatenation of both halves), and
``mixbench.pretrain.features.FeatureExtractor`` wraps it with the file's own pixel statistics. Neither stage imports
the other; the commands build the extractor here and hand it to linear evaluation, kNN and the flatness analysis.

A spec is a checkpoint path or ``random:<arch>`` (torchvision's seeded random init), so the random baseline runs
under exactly the same protocol.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from mixbench.pretrain.backbones import build_backbone
from mixbench.pretrain.features import FeatureExtractor, random_extractor

__all__ = ["load_feature_extractor"]


def load_feature_extractor(spec: str | Path, seed: int = 0) -> FeatureExtractor:
    """Frozen :class:`FeatureExtractor` for ``spec`` (a checkpoint in any converter layout, or ``random:<arch>``).

    Raises:
        mixbench.convert.errors.ConversionError: the file's layout or tensors do not make a ResNet (names the file).
        mixbench.base.safe_load.UnsafeCheckpointError: the file needs pickled code (nothing from it was run).
        FileNotFoundError: no such file.
    """
    spec = str(spec)
    if spec.startswith("random:"):
        return random_extractor(spec.split(":", 1)[1], seed=seed)
    from mixbench.convert.api import read_backbone

    bb = read_backbone(spec)
    enc = build_backbone(bb.arch)
    enc.fc = nn.Identity()
    enc.load_state_dict(bb.tensors, strict=True)  # read_backbone checked every key and shape already
    method = bb.meta.mixbench.method if bb.meta.mixbench is not None else bb.source_layout
    return FeatureExtractor(
        [enc], bb.pixel_mean, bb.pixel_std,
        info={"source": spec, "method": method, "arch": bb.arch, "layout": bb.source_layout},
    )
