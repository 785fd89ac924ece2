"""The ResNet family, listed once: torchvision's depths, blocks per stage and block type.

Pretraining builds backbones from it, the converter infers a checkpoint's depth from it, and the command line
offers its names. Kept free of torch so parsers can import it.
"""

from __future__ import annotations

__all__ = ["ARCHS", "ResNetSpec", "arch_from_blocks"]

from typing import NamedTuple


class ResNetSpec(NamedTuple):
    depth: int
    bottleneck: bool  # Bottleneck (1x1-3x3-1x1, expansion 4) vs BasicBlock (3x3-3x3)
    blocks: tuple[int, int, int, int]  # blocks per stage, layer1..layer4


ARCHS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec(18, False, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(34, False, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(50, True, (3, 4, 6, 3)),
    "resnet101": ResNetSpec(101, True, (3, 4, 23, 3)),
    "resnet152": ResNetSpec(152, True, (3, 8, 36, 3)),
}


def arch_from_blocks(blocks: tuple[int, ...] | list[int], bottleneck: bool) -> str | None:
    """The arch whose blocks per stage and block type these are, or None."""
    return next((name for name, s in ARCHS.items() if s.blocks == tuple(blocks) and s.bottleneck == bottleneck), None)
