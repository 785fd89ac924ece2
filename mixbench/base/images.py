"""Images as 8-bit RGB: the one decoding rule of every mixbench loader (pretraining, device views, detection).

Pillow's ``convert("RGB")`` clips wider samples at 255, so a 16-bit PNG would become a white image. Here 16-bit
samples keep their high byte (``torchvision.transforms.v2.functional.to_dtype(scale=True)``; OpenCV and Pillow's
own 16-bit RGB decoding do the same), so 65535 -> 255, 32768 -> 128 and 257 k -> k. Samples whose range the file
does not state (32-bit integer, float) are refused with the file named: any scale chosen for them would be a guess.
Every 8-bit mode (1, L, LA, P with or without transparency, RGB, RGBA, CMYK, YCbCr, ...) keeps Pillow's conversion;
alpha is dropped, as torchvision's image folders drop it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2.functional import to_dtype

from mixbench.base.io import DataError

__all__ = ["SIXTEEN_BIT_MODES", "decode_rgb", "to_rgb", "to_uint8"]

# Pillow's single-channel 16-bit modes (16-bit RGB(A) and LA open as their 8-bit modes, already scaled).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Formats whose Pillow mode "I" holds 16-bit samples: a PGM with maxval > 255 (scaled to 0-65535 on opening), and
# a 16-bit grey PNG under Pillow versions that open it as I rather than I;16.
_SIXTEEN_BIT_I_FORMATS = ("PNG", "PPM")


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A uint8 or uint16 image tensor as uint8, 16-bit samples scaled by their high byte (not clipped)."""
    if image.dtype == torch.uint8:
        return image
    if image.dtype != torch.uint16:
        raise ValueError(f"expected a uint8 or uint16 image, got {image.dtype}")
    return to_dtype(image, torch.uint8, scale=True)


def to_rgb(img: Image.Image, path: str | Path) -> Image.Image:
    """``img`` as an 8-bit RGB image; :class:`DataError` naming ``path`` when its samples have no stated range."""
    if img.mode in SIXTEEN_BIT_MODES or (img.mode == "I" and img.format in _SIXTEEN_BIT_I_FORMATS):
        wide = torch.from_numpy(np.asarray(img).astype(np.uint16))
        return Image.fromarray(to_uint8(wide).numpy(), mode="L").convert("RGB")
    if img.mode in ("I", "F") or img.mode.startswith(("I;", "F;")):
        raise DataError(f"{path}: {'float' if img.mode.startswith('F') else '32-bit integer'} samples (Pillow mode "
                        f"{img.mode}) have no stated 8-bit scale; convert the file to 8 or 16 bits per sample")
    if img.mode in ("P", "PA"):  # through RGBA: Pillow warns on a direct P -> RGB with byte transparency
        img = img.convert("RGBA")
    return img.convert("RGB")


def decode_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode the image file ``path`` as 8-bit RGB; :class:`DataError` naming it when it cannot be.

    A truncated, empty or foreign file fails here, not later in a worker with no name attached.
    """
    try:
        with Image.open(path) as img:
            return to_rgb(img, path)  # converting decodes the whole file
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: unreadable image ({type(err).__name__}: {err}); fix or remove the file") from None
