"""The synthetic data generator: determinism, atomicity, layout, and loading with the real loaders.

References are independent of the generator: the files on disk re-read with ElementTree/PIL/json,
torchvision's ``ImageFolder``, pycocotools (``COCO``, ``annToMask`` rasterisation), and mmdet's ``VOCDataset``
and ``CocoDataset``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mixbench import synthetic
from mixbench.pretrain.imagenet100 import IMAGENET100_WNIDS
from mixbench.synthetic import COCO_CLASSES_USED, MARKER_NAME, PRESETS, VOC_CLASSES_USED, generate

TINY = PRESETS["tiny"]
VOC_SPLITS = (("2007", "trainval", TINY.voc07_trainval), ("2007", "test", TINY.voc07_test),
              ("2012", "trainval", TINY.voc12_trainval))  # fmt: skip
COCO_SPLITS = (("train2017", TINY.coco_train), ("val2017", TINY.coco_val))


def _tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 for every file under ``root`` (hidden ones included)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _root(roots: dict[str, Path]) -> Path:
    return roots["imagenet"].parent


def _mmdet_ready() -> None:
    """mmdet's datasets need mmcv with compiled ops; fail (not skip) with the fix when it is missing."""
    try:
        import mmcv.ops  # noqa: F401
    except ImportError as err:  # a broken install must not pass silently
        pytest.fail(f"mmcv with compiled ops is not installed ({err}); run `make setup` first")
    from mmdet.utils import register_all_modules

    register_all_modules()


def _voc_objects(xml_path: Path) -> list[dict]:
    root = ET.parse(xml_path).getroot()
    out = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        out.append({
            "name": obj.findtext("name"),
            "difficult": int(obj.findtext("difficult")),
            "truncated": int(obj.findtext("truncated")),
            "box": [int(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")],
        })  # fmt: skip
    return out


# -------------------------------------------------------------------------------- determinism, atomicity
def test_same_seed_same_bytes_other_seed_differs_and_replaces(synthetic_root, tmp_path, capsys):
    reference = _tree_digest(_root(synthetic_root))
    other = tmp_path / "other"
    generate(other, seed=1, preset="tiny")
    seed1 = _tree_digest(other)
    assert seed1.keys() == reference.keys()  # same layout
    changed = [k for k in reference if reference[k] != seed1[k]]
    assert len(changed) > 0.9 * len(reference), "a different seed must change (nearly) every file"

    # Regenerating seed 0 over the seed-1 tree (which we own) replaces it with the seed-0 bytes exactly.
    generate(other, seed=0, preset="tiny")
    assert _tree_digest(other) == reference
    assert not list(other.glob(".tmp-*")), "temporary folders must be removed"

    # Same seed/preset again: a no-op that says so and touches nothing.
    mtimes = {p: p.stat().st_mtime_ns for p in other.rglob("*")}
    generate(other, seed=0, preset="tiny", verbose=True)
    assert "already complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in other.rglob("*")} == mtimes


def test_crash_leaves_no_half_tree(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash while writing COCO")

    monkeypatch.setattr(synthetic, "_write_coco", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate(tmp_path / "root", seed=0, preset="tiny")
    # no data folders, no tmp, no marker; only the generators' lock file, released (it names no holder)
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == [".lock"]
    assert (tmp_path / "root" / ".lock").read_text() == ""


def test_a_second_generator_waits_for_the_lock_holder(tmp_path, monkeypatch, capsys):
    from mixbench.base.locks import work_dir_lock

    monkeypatch.setattr(synthetic, "LOCK_WAIT_S", 0.3)
    with work_dir_lock(tmp_path):  # another generator of this root, still writing
        assert synthetic.main(argparse.Namespace(root=str(tmp_path), seed=0, preset="tiny")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pid {os.getpid()}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # nothing written beside the holder's lock
    assert synthetic.main(argparse.Namespace(root=str(tmp_path), seed=0, preset="tiny")) == 0  # once released


def test_refuses_to_overwrite_foreign_data(tmp_path):
    real = tmp_path / "VOCdevkit" / "VOC2007"
    real.mkdir(parents=True)
    (real / "keep.txt").write_text("real data")
    with pytest.raises(FileExistsError, match="VOCdevkit"):
        generate(tmp_path, seed=0, preset="tiny")
    assert (real / "keep.txt").read_text() == "real data"
    assert not (tmp_path / "imagenet").exists() and not (tmp_path / MARKER_NAME).exists()


@pytest.mark.parametrize(("seed", "preset", "match"), [(0, "huge", "unknown synthetic preset"),
                                                       (-1, "tiny", "non-negative")])  # fmt: skip
def test_bad_arguments(tmp_path, seed, preset, match):
    with pytest.raises(ValueError, match=match):
        generate(tmp_path, seed=seed, preset=preset)
    assert list(tmp_path.iterdir()) == []


def test_main_prints_and_returns_codes(synthetic_root, tmp_path, capsys):
    root = _root(synthetic_root)
    assert synthetic.main(argparse.Namespace(root=str(root), seed=0, preset="tiny")) == 0
    assert "already complete" in capsys.readouterr().out
    assert synthetic.main(argparse.Namespace(root=str(tmp_path), seed=0, preset="nope")) == 2
    assert "unknown synthetic preset" in capsys.readouterr().err


# -------------------------------------------------------------------------------- layout, files on disk
def test_layout(synthetic_root):
    root = _root(synthetic_root)
    assert synthetic_root == {"imagenet": root / "imagenet", "voc": root / "VOCdevkit", "coco": root / "coco"}
    marker = json.loads((root / MARKER_NAME).read_text())
    assert (marker["seed"], marker["preset"]) == (0, "tiny")

    wnids = IMAGENET100_WNIDS[: TINY.imagenet_classes]
    for split, n in (("train", TINY.imagenet_train), ("val", TINY.imagenet_val)):
        assert sorted(p.name for p in (root / "imagenet" / split).iterdir()) == sorted(wnids)
        for wnid in wnids:
            files = sorted((root / "imagenet" / split / wnid).iterdir())
            assert len(files) == n
            assert all(f.name.startswith(f"{wnid}_") and f.suffix == ".JPEG" for f in files)
            with Image.open(files[0]) as im:
                assert im.format == "JPEG" and im.mode == "RGB"

    voc = root / "VOCdevkit"
    assert not (voc / "VOC2012/ImageSets/Main/test.txt").exists()  # VOC2012 test is not public
    ids_by_year: dict[str, list[str]] = {"2007": [], "2012": []}
    for year, split, n in VOC_SPLITS:
        ids = (voc / f"VOC{year}/ImageSets/Main/{split}.txt").read_text().split()
        assert len(ids) == n and ids == sorted(ids)
        ids_by_year[year] += ids
        for image_id in ids:
            xml = ET.parse(voc / f"VOC{year}/Annotations/{image_id}.xml").getroot()
            assert xml.findtext("folder") == f"VOC{year}" and xml.findtext("filename") == f"{image_id}.jpg"
            with Image.open(voc / f"VOC{year}/JPEGImages/{image_id}.jpg") as im:
                size = (int(xml.findtext("size/width")), int(xml.findtext("size/height")))
                assert im.size == size and xml.findtext("size/depth") == "3"
            for obj in _voc_objects(voc / f"VOC{year}/Annotations/{image_id}.xml"):
                x0, y0, x1, y1 = obj["box"]
                assert obj["name"] in VOC_CLASSES_USED
                assert 1 <= x0 < x1 <= size[0] and 1 <= y0 < y1 <= size[1]  # 1-based, inside the image
    for year, ids in ids_by_year.items():
        assert len(set(ids)) == len(ids), f"VOC{year} trainval and test overlap"
        on_disk = sorted(p.stem for p in (voc / f"VOC{year}/JPEGImages").iterdir())
        assert on_disk == sorted(ids) == sorted(p.stem for p in (voc / f"VOC{year}/Annotations").iterdir())

    for split, n in COCO_SPLITS:
        data = json.loads((root / f"coco/annotations/instances_{split}.json").read_text())
        assert set(data) == {"info", "licenses", "images", "annotations", "categories"}
        names = sorted(im["file_name"] for im in data["images"])
        assert len(names) == n and names == sorted(p.name for p in (root / "coco" / split).iterdir())


def test_voc_difficult_flags_mark_small_objects(synthetic_root):
    voc = synthetic_root["voc"]
    objects = [o for year in ("2007", "2012") for x in sorted((voc / f"VOC{year}/Annotations").glob("*.xml"))
               for o in _voc_objects(x)]  # fmt: skip
    difficult = [o for o in objects if o["difficult"]]
    assert 0 < len(difficult) < 0.5 * len(objects)
    side = max(TINY.small_size) + 2  # longer side of a small object, +1 px per end for 1-based rounding
    assert all(max(o["box"][2] - o["box"][0], o["box"][3] - o["box"][1]) + 1 <= side for o in difficult)


def test_coco_categories_are_the_official_80():
    ids = [c["id"] for c in synthetic.COCO_CATEGORIES]
    # The official 2017 ids: 1..90 without these ten (ids of categories dropped before release).
    assert ids == [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]
    assert {c["name"]: c["supercategory"] for c in synthetic.COCO_CATEGORIES}["toothbrush"] == "indoor"
    assert set(COCO_CLASSES_USED) <= {c["name"] for c in synthetic.COCO_CATEGORIES}
    assert set(VOC_CLASSES_USED) <= set(synthetic.VOC_CLASSES)


def test_imagefolder_loads_imagenet(synthetic_root):
    from torchvision.datasets import ImageFolder

    wnids = list(IMAGENET100_WNIDS[: TINY.imagenet_classes])
    for split, n in (("train", TINY.imagenet_train), ("val", TINY.imagenet_val)):
        ds = ImageFolder(str(synthetic_root["imagenet"] / split))
        assert ds.classes == sorted(wnids)
        assert len(ds) == n * len(wnids)
        assert np.bincount(ds.targets).tolist() == [n] * len(wnids)
        img, _ = ds[0]
        assert img.size == TINY.imagenet_size  # (min, max) of a side; 'tiny' fixes both to 64


def test_pycocotools_loads_coco_masks_match_area(synthetic_root):
    from pycocotools.coco import COCO

    for split, n in COCO_SPLITS:
        path = synthetic_root["coco"] / f"annotations/instances_{split}.json"
        raw = json.loads(path.read_text())
        coco = COCO(str(path))
        assert len(coco.getImgIds()) == n and len(coco.getCatIds()) == 80
        used = set(coco.getCatIds(catNms=list(COCO_CLASSES_USED)))
        assert len(used) == len(COCO_CLASSES_USED)
        assert len(coco.getAnnIds()) == len(raw["annotations"]) == len({a["id"] for a in raw["annotations"]})
        for img_id in coco.getImgIds():
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
            assert 1 <= len(anns) <= 4
            for ann in anns:
                assert ann["iscrowd"] == 0 and ann["category_id"] in used
                mask = coco.annToMask(ann)
                # pycocotools' rasterisation is the independent reference for the polygon area.
                assert mask.sum() == pytest.approx(ann["area"], rel=0.12, abs=12)
                # The box is the polygon's extent; a rasterised sharp tip (star, triangle) may lose ~1-2 px.
                ys, xs = np.nonzero(mask)
                x, y, w, h = ann["bbox"]
                assert abs(xs.min() - x) <= 2 and abs(xs.max() + 1 - (x + w)) <= 2
                assert abs(ys.min() - y) <= 2 and abs(ys.max() + 1 - (y + h)) <= 2


# -------------------------------------------------------------------------------- mmdet loaders
def _load_without_warnings(dataset_type: type, **kwargs: Any):
    """Build and fully load an mmdet dataset; it must raise no warning (e.g. no missing-file or size warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = dataset_type(**kwargs)
        ds.full_init()
    assert [str(w.message) for w in caught] == []
    return ds


def test_mmdet_voc_dataset_matches_xml(synthetic_root):
    _mmdet_ready()
    from mmdet.datasets import VOCDataset

    voc = synthetic_root["voc"]
    for year, split, n in VOC_SPLITS:
        ds = _load_without_warnings(
            VOCDataset,
            data_root=str(voc),
            ann_file=f"VOC{year}/ImageSets/Main/{split}.txt",
            data_prefix=dict(sub_data_root=f"VOC{year}/"),
            test_mode=split == "test",
            pipeline=[],
        )
        assert len(ds) == n
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            assert Path(info["img_path"]).is_file()
            xml_objs = _voc_objects(Path(info["xml_path"]))
            assert len(info["instances"]) == len(xml_objs)
            for inst, obj in zip(info["instances"], xml_objs):
                assert ds.metainfo["classes"][inst["bbox_label"]] == obj["name"]
                # mmdet 3.3 (xml_style.py) subtracts 1 from all four 1-based VOC corners.
                assert inst["bbox"] == [v - 1 for v in obj["box"]]
                assert inst["ignore_flag"] == obj["difficult"]


def test_mmdet_coco_dataset_loads_boxes_and_masks(synthetic_root):
    _mmdet_ready()
    from mmdet.datasets import CocoDataset

    coco = synthetic_root["coco"]
    for split, n in COCO_SPLITS:
        raw = json.loads((coco / f"annotations/instances_{split}.json").read_text())
        per_image = {im["id"]: [a for a in raw["annotations"] if a["image_id"] == im["id"]]
                     for im in raw["images"]}  # fmt: skip
        ds = _load_without_warnings(
            CocoDataset,
            data_root=str(coco),
            ann_file=f"annotations/instances_{split}.json",
            data_prefix=dict(img=f"{split}/"),
            test_mode=False,
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            pipeline=[
                dict(type="LoadImageFromFile"),
                dict(type="LoadAnnotations", with_bbox=True, with_mask=True, poly2mask=False),
            ],
        )
        assert len(ds) == n  # nothing filtered: every image has objects and is >= 32 px
        assert list(ds.metainfo["classes"]) == [c["name"] for c in synthetic.COCO_CATEGORIES]
        for i in range(len(ds)):
            sample = ds[i]
            img_id = ds.get_data_info(i)["img_id"]
            anns = per_image[img_id]
            assert sample["img"].shape[:2] == (sample["height"], sample["width"])
            assert len(sample["gt_bboxes"]) == len(anns) == len(sample["gt_masks"])
            # PolygonMasks.areas is mmdet's own shoelace over the loaded polygons.
            assert np.allclose(sample["gt_masks"].areas, [a["area"] for a in anns], rtol=1e-3, atol=0.05)
            x, y, w, h = np.array([a["bbox"] for a in anns]).T
            expected = np.stack([x, y, x + w, y + h], axis=1)
            assert np.allclose(sample["gt_bboxes"].tensor.numpy(), expected, atol=1e-3)
