"""Every loader decodes every image mode to the same 8-bit RGB, checked against hand-computed pixels.

The files are written here; the 16-bit PNGs by a small independent writer (``_png16``), so neither the writer
nor the reader under test is Pillow's alone. Expected 16-bit -> 8-bit values: the high byte, v >> 8.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mixbench.base.images import decode_rgb
from mixbench.base.io import DataError
from mixbench.pretrain.data import ImageFolderViews
from mixbench.transfer.datasets import MixbenchLoadImageFromFile

WIDE = [0, 255, 256, 257 * 10, 32767, 32768, 257 * 200, 65535]
WIDE_AS_8BIT = [0, 0, 1, 10, 127, 128, 200, 255]  # v >> 8, by hand


def _png16(path: Path, samples: np.ndarray) -> Path:
    """A 16-bit PNG (grey: (H, W), colour type 0; RGB: (H, W, 3), colour type 2), big-endian rows, filter 0."""
    height, width = samples.shape[:2]
    colour = 0 if samples.ndim == 2 else 2
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train" / "c0"
    folder.mkdir(parents=True)
    return folder


def _grey16(folder: Path) -> tuple[Path, np.ndarray]:
    path = _png16(folder / "grey16.png", np.array([WIDE], np.uint16))
    return path, np.repeat(np.array([WIDE_AS_8BIT], np.uint8)[..., None], 3, axis=2)


def _rgb16(folder: Path) -> tuple[Path, np.ndarray]:
    wide = np.array([WIDE, WIDE[::-1], WIDE[2:] + WIDE[:2]], np.uint16).T[None]  # (1, 8, 3)
    want = np.array([WIDE_AS_8BIT, WIDE_AS_8BIT[::-1], WIDE_AS_8BIT[2:] + WIDE_AS_8BIT[:2]], np.uint8).T[None]
    return _png16(folder / "rgb16.png", wide), want


def _pgm16(folder: Path) -> tuple[Path, np.ndarray]:
    """A binary 16-bit PGM (maxval 65535), which Pillow opens in mode I."""
    path = folder / "grey16.pgm"
    path.write_bytes(f"P5\n{len(WIDE)} 1\n65535\n".encode() + np.array(WIDE, ">u2").tobytes())
    return path, np.repeat(np.array([WIDE_AS_8BIT], np.uint8)[..., None], 3, axis=2)


def _cmyk(folder: Path) -> tuple[Path, np.ndarray]:
    """CMYK -> RGB without a profile: R = (255 - K) - C (255 - K) / 255, alike for G (M) and B (Y)."""
    img = Image.new("CMYK", (4, 1))
    img.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255), (0, 255, 255, 0)])
    img.save(folder / "cmyk.tif")
    return folder / "cmyk.tif", np.array([[[255, 255, 255], [0, 255, 255], [0, 0, 0], [255, 0, 0]]], np.uint8)


def _la(folder: Path) -> tuple[Path, np.ndarray]:
    img = Image.new("LA", (3, 1))
    img.putdata([(100, 0), (200, 255), (7, 128)])  # alpha is dropped, grey kept
    img.save(folder / "la.png")
    return folder / "la.png", np.array([[[100] * 3, [200] * 3, [7] * 3]], np.uint8)


def _palette(folder: Path) -> tuple[Path, np.ndarray]:
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 0, 255, 10, 20, 30] + [0] * (256 - 3) * 3)
    img.putdata([0, 1, 2])
    img.save(folder / "palette.png", transparency=0)  # index 0 transparent: its colour stays red
    return folder / "palette.png", np.array([[[255, 0, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)


def _bilevel(folder: Path) -> tuple[Path, np.ndarray]:
    img = Image.new("1", (2, 1))
    img.putdata([0, 255])
    img.save(folder / "bilevel.png")
    return folder / "bilevel.png", np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)


IMAGES = {"grey16": _grey16, "rgb16": _rgb16, "pgm16": _pgm16, "cmyk": _cmyk, "la": _la, "palette": _palette,
          "bilevel": _bilevel}


def _pil(path: Path) -> np.ndarray:
    return np.asarray(decode_rgb(path))


def _folder_views(path: Path) -> np.ndarray:
    ds = ImageFolderViews(str(path.parent.parent), aug=None, pipeline=[], n_views=1)  # no transform: the pixels
    return ds[0]["inputs"][0].permute(1, 2, 0).numpy()


def _folder_decode(path: Path) -> np.ndarray:
    return ImageFolderViews(str(path.parent.parent), aug=None, worker_stage="decode")[0]["inputs"].permute(
        1, 2, 0).numpy()


def _detection(path: Path) -> np.ndarray:
    return MixbenchLoadImageFromFile().transform({"img_path": str(path)})["img"][..., ::-1]  # BGR -> RGB


LOADERS: dict[str, Callable[[Path], np.ndarray]] = {
    "decode_rgb": _pil, "image_folder": _folder_views, "worker_decode": _folder_decode, "detection": _detection}


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_every_loader_decodes_every_mode_to_the_hand_computed_rgb(tmp_path, kind, loader):
    path, want = IMAGES[kind](_folder(tmp_path))
    got = LOADERS[loader](path)
    assert got.dtype == np.uint8 and got.tolist() == want.tolist()


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize(("array", "mode_word"), [(np.full((2, 2), 0.5, np.float32), "float"),
                                                  (np.full((2, 2), 70000, np.int32), "32-bit integer")])
def test_samples_without_a_stated_scale_are_refused_with_the_file_named(tmp_path, loader, array, mode_word):
    path = _folder(tmp_path) / "wide.tif"
    Image.fromarray(array).save(path)
    why = "unreadable image" if loader == "detection" else f"{mode_word} samples"  # OpenCV refuses 32-bit samples
    with pytest.raises(DataError, match=rf"wide\.tif: {why}"):
        LOADERS[loader](path)


def test_cmyk_jpeg_in_read_mode_is_decoded_by_the_worker(tmp_path):
    """A CMYK JPEG reaches the device decoded by the shared rule; an RGB one as file bytes, decoded there."""
    from mixbench.pretrain.device_views import DeviceViews

    folder = _folder(tmp_path)
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(folder / "a_cmyk.jpg", quality=100)
    Image.new("RGB", (16, 12), (0, 0, 255)).save(folder / "b_rgb.jpg", quality=100)
    ds = ImageFolderViews(str(folder.parent), aug=None, worker_stage="read")
    cmyk, rgb = ds[0]["inputs"], ds[1]["inputs"]
    assert cmyk.shape == (3, 12, 16) and rgb.dim() == 1  # decoded image / file bytes
    decoded = DeviceViews.decode([cmyk, rgb], "cpu")
    assert torch.equal(decoded[0], torch.from_numpy(_pil(folder / "a_cmyk.jpg").copy()).permute(2, 0, 1))
    assert decoded[1].shape == (3, 12, 16) and (decoded[1][2].int() - 255).abs().max() <= 2  # blue, JPEG-exact
    assert (decoded[0][0].int() - 255).abs().max() <= 2 and decoded[0][1:].int().max() <= 2  # red
