"""RGB -> YCbCr as used by CMC (skimage ``rgb2ycbcr``, ITU-R BT.601) and CMC's YCbCr normalisation.

This is the one definition of the colour transform: the CMC model applies it on the device, the converter's CMC
fold reads the same numbers from the checkpoint's metadata (``color``), so nothing has to be guessed.

Encoder input = (YCBCR_MATRIX @ rgb + YCBCR_OFFSET - YCBCR_MEAN) / YCBCR_STD with rgb in [0, 255];
channel 0 (Y, "L view") feeds one half-width ResNet, channels 1-2 (CbCr, "ab view") the other.
"""

from __future__ import annotations

import torch

# skimage.color.rgb2ycbcr for RGB in [0, 1], divided by 255 so it applies to RGB in [0, 255].
YCBCR_MATRIX: tuple[tuple[float, float, float], ...] = (
    (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0),
    (-37.797 / 255.0, -74.203 / 255.0, 112.0 / 255.0),
    (112.0 / 255.0, -93.786 / 255.0, -18.214 / 255.0),
)
YCBCR_OFFSET: tuple[float, float, float] = (16.0, 128.0, 128.0)
# CMC's train_CMC.py normalisation for the YCbCr views.
YCBCR_MEAN: tuple[float, float, float] = (116.151, 121.080, 132.342)
YCBCR_STD: tuple[float, float, float] = (109.500, 111.855, 111.964)
# Plain ImageNet RGB statistics (0-255), used by MoCo and by torchvision/mmdet.
IMAGENET_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """Convert RGB in [0, 255] to YCbCr (Y in [16, 235], CbCr in [16, 240]).

    Shape: (N, 3, H, W) -> (N, 3, H, W).
    """
    m = torch.tensor(YCBCR_MATRIX, dtype=rgb.dtype, device=rgb.device)
    off = torch.tensor(YCBCR_OFFSET, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return torch.einsum("ij,njhw->nihw", m, rgb) + off


def color_meta() -> dict:
    """The colour transform as plain data, for checkpoint metadata (weights-only safe)."""
    return {
        "space": "ycbcr",
        "matrix": [list(r) for r in YCBCR_MATRIX],
        "offset": list(YCBCR_OFFSET),
        "mean": list(YCBCR_MEAN),
        "std": list(YCBCR_STD),
        "views": {"l": [0], "ab": [1, 2]},
    }
