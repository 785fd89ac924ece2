"""Pretraining data: views as uint8 0-255 tensors, file lists, the ImageNet-100 subset builder."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mixbench.pretrain.data import ImageFolderViews, build_imagenet100, eval_collate
from mixbench.pretrain.imagenet100 import IMAGENET100_WNIDS


def test_views_are_uint8_and_indexed(synthetic_root):
    ds = ImageFolderViews(str(synthetic_root["imagenet"] / "train"), aug="moco_v2", size=32, n_views=2)
    item = ds[3]
    assert len(item["inputs"]) == 2
    for v in item["inputs"]:
        assert v.dtype == torch.uint8 and v.shape == (3, 32, 32)
    assert item["data_samples"]["idx"] == 3
    assert item["data_samples"]["label"] == ds.samples[3][1]
    val = ImageFolderViews(str(synthetic_root["imagenet"] / "val"), aug="center", size=32, n_views=1)
    batch = eval_collate([val[0], val[1]])
    assert batch["inputs"].shape == (2, 3, 32, 32) and batch["data_samples"].shape == (2,)


def test_missing_folder_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        ImageFolderViews("no_such_dir")
    with pytest.raises(ValueError, match="augmentation"):
        ImageFolderViews(".", aug="autoaugment")


@pytest.fixture()
def fake_imagenet(tmp_path):
    src = tmp_path / "full" / "train"
    for w in IMAGENET100_WNIDS + ("n99999999",):  # plus a class that is not in ImageNet-100
        (src / w).mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(src / w / f"{w}_1.JPEG")
    return src


def test_imagenet100_symlinks(fake_imagenet, tmp_path):
    dst = build_imagenet100(fake_imagenet, tmp_path / "in100" / "train", mode="symlink")
    ds = ImageFolderViews(str(dst), aug="center", size=8, n_views=1)
    assert ds.classes == sorted(IMAGENET100_WNIDS) and len(ds) == 100
    build_imagenet100(fake_imagenet, dst, mode="symlink")  # idempotent


def test_imagenet100_file_list(fake_imagenet, tmp_path):
    lst = build_imagenet100(fake_imagenet, tmp_path / "in100_train.txt", mode="filelist")
    lines = lst.read_text().splitlines()
    first = sorted(IMAGENET100_WNIDS)[0]
    assert len(lines) == 100 and lines[0] == f"{first}/{first}_1.JPEG 0"
    ds = ImageFolderViews(str(fake_imagenet), aug="center", size=8, n_views=1, file_list=str(lst))
    assert len(ds) == 100 and ds[99]["data_samples"]["label"] == 99


def test_imagenet100_missing_class(tmp_path):
    (tmp_path / "src" / IMAGENET100_WNIDS[0]).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="99 ImageNet-100 class folders missing"):
        build_imagenet100(tmp_path / "src", tmp_path / "dst")


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_an_image"])
def test_unreadable_image_stops_with_its_path(tmp_path, damage):
    """A damaged file stops the run with its path, not a traceback that names no file."""
    import io

    from mixbench.base.io import DataError

    root = tmp_path / "train" / "n01440764"
    root.mkdir(parents=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, format="JPEG")
    good = buf.getvalue()
    (root / "a_good.JPEG").write_bytes(good)
    bad = {"truncated": good[: len(good) // 2], "empty": b"", "not_an_image": b"<html>404</html>"}[damage]
    (root / "b_bad.JPEG").write_bytes(bad)
    ds = ImageFolderViews(str(tmp_path / "train"), aug="center", size=32, n_views=1)
    assert ds[0]["inputs"][0].shape == (3, 32, 32)  # the good one reads
    with pytest.raises(DataError, match=r"b_bad\.JPEG: unreadable image"):
        ds[1]


def test_recipes_state_the_papers_settings():
    """MoCo v2's main_moco.py: crop scale (0.2, 1), ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, blur
    sigma (0.1, 2) p 0.5 with SimCLR's kernel of 10% of the view (23 px at 224); MoCo v1: jitter 0.4, p 1."""
    from mixbench.pretrain.augmentations import AUG_SPECS, blur_kernel_size

    v2 = AUG_SPECS["moco_v2"]
    assert (v2.scale, v2.jitter, v2.p_jitter, v2.p_gray, v2.sigma, v2.p_blur, v2.p_flip) == (
        (0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, (0.1, 2.0), 0.5, 0.5)
    assert (blur_kernel_size(224), blur_kernel_size(96), blur_kernel_size(32), blur_kernel_size(8)) == (23, 9, 3, 3)
    v1 = AUG_SPECS["moco_v1"]
    assert (v1.jitter, v1.p_jitter, v1.p_gray, v1.p_blur) == ((0.4, 0.4, 0.4, 0.4), 1.0, 0.2, 0.0)


def test_a_class_folder_linking_to_nothing_is_refused_by_name(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "n1").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / split / "n1" / "a.JPEG")
    (tmp_path / "train" / "n2").symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(FileNotFoundError, match=r"1 class folder\(s\) are links to nothing, e\.g\. \[.*train/n2'\]"):
        ImageFolderViews(str(tmp_path / "train"), aug="center", size=8, n_views=1)
    (tmp_path / "val" / "n2").symlink_to(tmp_path / "gone", target_is_directory=True)
    with pytest.raises(FileNotFoundError, match=r"val/n2"):  # explicit classes: the val split is checked too
        ImageFolderViews(str(tmp_path / "val"), aug="center", size=8, n_views=1, classes=["n1", "n2"])
