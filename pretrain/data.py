"""Pretraining data: ImageNet-style folder with multi-view augmentation; the ImageNet-100 subset builder.

Images leave the dataset as uint8 tensors in [0, 255]; normalisation and mixing happen in the data
preprocessor on the device (``pretrain.preprocessor``).
Augmentations: 'moco_v1', 'moco_v2' and 'cmc' as stated in ``pretrain.augmentations``, built here as
torchvision transforms; 'center' resizes to size / 0.875 and centre-crops (kNN monitor / evaluation). Every file is
decoded to 8-bit RGB by ``mixbench.base.images`` (16-bit samples scaled, not clipped).

``worker_stage`` picks what the DataLoader workers do: 'augment' (the reference: PIL decode + the transforms
above), 'decode' (``torchvision.io.decode_image`` only) or 'read' (the file bytes only; the batch is decoded on
the device). With 'decode'/'read' the views are made in batch on the device by ``pretrain.device_views``
(``MixPreprocessor(device_views=...)``) and the loader needs ``collate_fn=dict(type='image_list_collate')``,
since images keep their own sizes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from mmengine.registry import DATASETS, FUNCTIONS
from PIL import Image
from torch.utils.data import Dataset, default_collate
from torchvision import transforms as T
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import pil_to_tensor

from mixbench.base.images import decode_rgb, to_uint8
from mixbench.base.io import DataError
from mixbench.pretrain.augmentations import AUG_SPECS, blur_kernel_size
from mixbench.pretrain.imagenet100 import IMAGENET100_WNIDS

AUGMENTATIONS = (*AUG_SPECS, "center")
WORKER_STAGES = ("augment", "decode", "read")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's


def build_view_transform(aug: str, size: int) -> T.Compose:
    """One view's augmentation (:data:`AUG_SPECS` as torchvision transforms); returns a uint8 (3, size, size)."""
    if aug not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {aug!r}; choose one of {AUGMENTATIONS}")
    if aug == "center":  # evaluation: resize the short side to size / 0.875, centre crop
        return T.Compose([T.Resize(int(round(size / 0.875))), T.CenterCrop(size), T.PILToTensor()])
    spec = AUG_SPECS[aug]
    jitter = T.ColorJitter(*spec.jitter)
    steps = {
        "crop": T.RandomResizedCrop(size, scale=spec.scale, ratio=spec.ratio),
        # a p=1 jitter is not wrapped: RandomApply would draw a number the recipe's code does not draw
        "jitter": jitter if spec.p_jitter == 1 else T.RandomApply([jitter], p=spec.p_jitter),
        "gray": T.RandomGrayscale(p=spec.p_gray),
        "blur": T.RandomApply([T.GaussianBlur(blur_kernel_size(size), sigma=spec.sigma)], p=spec.p_blur),
        "flip": T.RandomHorizontalFlip(p=spec.p_flip),
    }
    return T.Compose([*(steps[name] for name in spec.steps), T.PILToTensor()])


def build_transforms_from_config(steps: Sequence[dict[str, Any]]) -> v2.Compose:
    """torchvision.transforms.v2 from config dicts (``dict(type='RandomResizedCrop', size=224)``) + PILToTensor."""
    ops = []
    for step in steps:
        step = dict(step)
        name = step.pop("type")
        if not hasattr(v2, name):
            raise ValueError(f"pipeline step {name!r} is not a torchvision.transforms.v2 transform")
        ops.append(getattr(v2, name)(**step))
    return v2.Compose([*ops, v2.PILToTensor()])


def resolve_classes(root: str | Path, classes: str | Sequence[str] | None) -> list[str]:
    """The ordered class list (label i = position i) of an image folder.

    ``None`` = the class folders of the ``train`` split beside ``root`` (else of ``root`` itself), so every split
    of a data set numbers its classes alike; ``'imagenet100'`` = the paper's 100 wnids
    (``mixbench.pretrain.imagenet100``); or an explicit list of folder names.
    """
    if classes == "imagenet100":
        return list(IMAGENET100_WNIDS)
    if isinstance(classes, str):
        raise ValueError(f"classes must be None, 'imagenet100' or a list of folder names, got {classes!r}")
    if classes is not None:
        return list(classes)
    root = Path(root)
    if (root.parent / "train").is_dir():
        root = root.parent / "train"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected an ImageNet-style ROOT/<class>/*.JPEG)")
    _refuse_dangling_links(root, [p.name for p in root.iterdir()])
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not found:
        raise ValueError(f"{root}: no class folders")
    return found


def _refuse_dangling_links(root: Path, names: Sequence[str]) -> None:
    """A class folder that is a link to nothing is an error: dropping it would renumber or shrink the classes."""
    dangling = sorted(n for n in names if (root / n).is_symlink() and not (root / n).exists())
    if dangling:
        raise FileNotFoundError(f"{root}: {len(dangling)} class folder(s) are links to nothing, e.g. "
                                f"{[str(root / n) for n in dangling[:3]]}; fix or remove the links")


@DATASETS.register_module()
class ImageFolderViews(Dataset):
    """ImageNet-style folder (``root/<wnid>/<image>``) yielding ``n_views`` augmented views of each image.

    The one image-folder data set of mixbench: pretraining (two views, MoCo; one, CMC), the kNN monitor, linear
    evaluation and the flatness analysis all read images through it.

    Args:
        root: the split folder, e.g. ``data/imagenet/train``.
        aug: a named augmentation (module docstring), or None when ``pipeline`` is given.
        size: crop size of ``aug`` (224 on ImageNet; small for CPU presets).
        n_views: 2 for MoCo (query, key), 1 for CMC (both views come from one crop) and for evaluation.
        pipeline: torchvision.transforms.v2 steps as config dicts (linear evaluation), instead of ``aug``.
        classes: None (the class folders of ``root``), ``'imagenet100'`` or a list of folder names; labels follow
            this order. A class folder missing from a ``train`` split is an error, not a smaller task.
        max_per_class: cap on images per class (quick monitors).
        file_list: text file of ``<relative path> <label>`` lines (e.g. an ImageNet-100 subset of a full ImageNet
            folder), instead of scanning ``root``.
        worker_stage: 'augment' (default, the reference PIL views), 'decode' (decoded image only) or 'read'
            (JPEG file bytes only); with 'decode'/'read' ``aug`` and ``pipeline`` must be None: the views are made
            on the device (``pretrain.device_views``).

    Item: ``dict(inputs=[view, ...] each (3, size, size) uint8, data_samples=dict(label=int, idx=int))``; with
    ``worker_stage='decode'`` ``inputs`` is one (3, H, W) uint8 image, with 'read' the (L,) uint8 file bytes.
    """

    def __init__(
        self,
        root: str,
        aug: str | None = "moco_v1",
        size: int = 224,
        n_views: int = 2,
        pipeline: Sequence[dict[str, Any]] | None = None,
        classes: str | Sequence[str] | None = None,
        max_per_class: int | None = None,
        file_list: str | None = None,
        worker_stage: str = "augment",
    ) -> None:
        root_path = Path(root)
        if worker_stage not in WORKER_STAGES:
            raise ValueError(f"worker_stage must be one of {WORKER_STAGES}, got {worker_stage!r}")
        if worker_stage != "augment" and (aug is not None or pipeline is not None):
            raise ValueError(
                f"worker_stage={worker_stage!r} makes the views on the device (model.data_preprocessor.device_views);"
                f" set aug=None and pipeline=None here, got aug={aug!r}"
            )
        if not root_path.is_dir():
            raise FileNotFoundError(f"{root}: image folder not found (expected <root>/<wnid>/<image>)")
        if n_views < 1:
            raise ValueError(f"n_views must be >= 1, got {n_views}")
        self.root, self.n_views, self.worker_stage = root_path, n_views, worker_stage
        self.transform = None
        if worker_stage == "augment":
            self.transform = (build_transforms_from_config(pipeline) if pipeline is not None
                              else build_view_transform(aug, size))
        if file_list is not None:
            self.samples, self.classes = _read_file_list(root_path, Path(file_list))
        else:
            self.classes = resolve_classes(root_path, classes)
            _refuse_dangling_links(root_path, self.classes)
            missing = [c for c in self.classes if not (root_path / c).is_dir()]
            if missing and root_path.name == "train":
                raise FileNotFoundError(f"{root_path}: {len(missing)} class folders missing, e.g. {missing[:3]}")
            self.samples = []
            for label, name in enumerate(self.classes):
                folder = root_path / name
                if folder.is_dir():
                    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
                    self.samples += [(str(p), label) for p in files[:max_per_class]]
        if not self.samples:
            raise ValueError(f"{root}: no images found")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> dict:
        path, label = self.samples[idx]
        if self.worker_stage != "augment":
            return {"inputs": self._load(path), "data_samples": {"label": label, "idx": idx}}
        # Policy (pretraining, linear eval, kNN): an unreadable image stops the run with its path. Skipping it
        # would silently change the dataset every number is measured on; the user fixes or removes the file.
        rgb = decode_rgb(path)
        views = [self.transform(rgb) for _ in range(self.n_views)]
        return {"inputs": views, "data_samples": {"label": label, "idx": idx}}

    def _load(self, path: str) -> torch.Tensor:
        """'decode': (3, H, W) uint8 RGB; 'read': the (L,) uint8 bytes of a JPEG file (for nvjpeg), or the decoded
        image of a CMYK/YCCK JPEG: its RGB comes from the one rule of ``mixbench.base.images``, not from whatever
        the device's decoder does with four components."""
        data = read_file(path)
        if self.worker_stage == "read":
            if data.numel() < 3 or data[0] != 0xFF or data[1] != 0xD8:  # JPEG start-of-image marker
                raise DataError(f"{path}: not a JPEG file; worker_stage='read' decodes JPEG only (use 'decode')")
            if _header_mode(path) in ("RGB", "L"):
                return data
            return pil_to_tensor(decode_rgb(path))
        try:
            return to_uint8(decode_image(data, mode=ImageReadMode.RGB))
        except RuntimeError:  # a format torchvision does not decode (TIFF, BMP, PPM) or a damaged file
            return pil_to_tensor(decode_rgb(path))


def _header_mode(path: str) -> str | None:
    """Pillow's mode of an image file from its header alone (no pixel decoding); None if Pillow cannot open it."""
    try:
        with Image.open(path) as img:
            return img.mode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _read_file_list(root: Path, file_list: Path) -> tuple[list[tuple[str, int]], list[str]]:
    if not file_list.is_file():
        raise FileNotFoundError(f"{file_list}: file list not found")
    samples = []
    for n, line in enumerate(file_list.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{file_list}:{n}: expected '<relative path> <label>', got {line!r}")
        samples.append((str(root / parts[0]), int(parts[1])))
    classes = sorted({Path(p).parent.name for p, _ in samples})
    return samples, classes


def build_imagenet100(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    mode: str = "symlink",
    wnids: tuple[str, ...] = IMAGENET100_WNIDS,
) -> Path:
    """Make the ImageNet-100 subset of a full ImageNet split folder (``src/<wnid>/*.JPEG``).

    mode 'symlink': ``dst/<wnid>`` links to ``src/<wnid>`` (an ImageFolder then sees 100 classes);
    mode 'filelist': writes ``dst`` as ``<relative path> <label>`` lines for ``ImageFolderViews(file_list=)``,
    labels in sorted-wnid order (ImageFolder's convention). Raises if a wnid is missing in ``src``.
    """
    from mixbench.base.io import atomic_write_text

    src, dst = Path(src), Path(dst)
    missing = [w for w in wnids if not (src / w).is_dir()]
    if missing:
        raise FileNotFoundError(f"{src}: {len(missing)} ImageNet-100 class folders missing, e.g. {missing[:3]}")
    ordered = sorted(wnids)
    if mode == "symlink":
        dst.mkdir(parents=True, exist_ok=True)
        for w in ordered:
            link = dst / w
            if link.is_symlink() or link.exists():
                if link.resolve() != (src / w).resolve():
                    raise FileExistsError(f"{link} exists and does not point to {src / w}")
                continue
            link.symlink_to((src / w).resolve(), target_is_directory=True)
    elif mode == "filelist":
        lines = []
        for label, w in enumerate(ordered):
            for f in sorted((src / w).iterdir()):
                if f.suffix.lower() in IMG_EXTENSIONS:
                    lines.append(f"{w}/{f.name} {label}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dst, "\n".join(lines) + "\n")
    else:
        raise ValueError(f"mode must be 'symlink' or 'filelist', got {mode!r}")
    return dst


@FUNCTIONS.register_module()
def eval_collate(items: list[dict]) -> dict:
    """Collate single-view items into ``{'inputs': (B, 3, H, W) uint8, 'data_samples': (B,) labels}`` (what
    ``mixbench.pretrain.knn.extract_features`` and ``LinearClassifier`` take)."""
    return {
        "inputs": torch.stack([it["inputs"][0] for it in items]),
        "data_samples": torch.tensor([it["data_samples"]["label"] for it in items]),
    }


@FUNCTIONS.register_module()
def image_list_collate(items: list[dict]) -> dict:
    """Collate ``worker_stage='decode'|'read'`` items: ``inputs`` stays a list of N tensors (images keep their
    own sizes; the device pipeline crops each), ``data_samples`` as ``default_collate`` gives them."""
    return {
        "inputs": [it["inputs"] for it in items],
        "data_samples": default_collate([it["data_samples"] for it in items]),
    }
