"""Bad VOC/COCO files are named, dropped annotations are counted per reason, boxes outside the image are clipped,
missing/empty images follow the per-split policy of mixbench.transfer.datasets (test splits before training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mixbench.base.io import DataError
from mixbench.transfer.datasets import (
    DATA_REPORTS,
    MixbenchCocoDataset,
    MixbenchLoadImageFromFile,
    MixbenchVOCDataset,
)

OBJ = ("<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
       "<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>")


def _voc(root: Path, boxes: dict[str, list[tuple[str, tuple[int, int, int, int]]]], split: str = "test") -> Path:
    """A VOC2007 folder: one 100x80 image per id, its XML with the given (class, box) objects."""
    voc = root / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    for img_id, objs in boxes.items():
        Image.new("RGB", (100, 80), (90, 90, 90)).save(voc / "JPEGImages" / f"{img_id}.jpg")
        body = "".join(OBJ.format(name=n, b=b) for n, b in objs)
        (voc / "Annotations" / f"{img_id}.xml").write_text(
            f"<annotation><size><width>100</width><height>80</height><depth>3</depth></size>{body}</annotation>")
    (voc / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(boxes) + "\n")
    return root


def _voc_dataset(root: Path, test_mode: bool = True, split: str = "test") -> MixbenchVOCDataset:
    return MixbenchVOCDataset(data_root=str(root), ann_file=f"VOC2007/ImageSets/Main/{split}.txt",
                              data_prefix=dict(sub_data_root="VOC2007/"), test_mode=test_mode, pipeline=[])


def test_voc_counts_dropped_and_clipped_boxes(tmp_path):
    root = _voc(tmp_path, {"000001": [("dog", (10, 10, 50, 40)),        # kept as is
                                      ("dragon", (10, 10, 50, 40)),     # unknown class
                                      ("cat", (60, 10, 20, 40)),        # x2 < x1
                                      ("car", (50, 50, 140, 90))],      # reaches outside 100x80: clipped
                           "000002": [("person", (1, 1, 100, 80))]})
    DATA_REPORTS.clear()
    ds = _voc_dataset(root)
    insts = {d["img_id"]: d["instances"] for d in (ds.get_data_info(i) for i in range(len(ds)))}
    assert [i["bbox"] for i in insts["000001"]] == [[9, 9, 49, 39], [49, 49, 100, 80]]  # VOC's minus one, clip
    assert [i["bbox"] for i in insts["000002"]] == [[0, 0, 99, 79]]
    (report,) = DATA_REPORTS.values()
    assert report["dropped_annotations"] == {"unknown class": 1,
                                             "degenerate box (x2 <= x1 or y2 <= y1, or wholly outside the image)": 1}
    assert report["clipped_boxes"] == 1 and report["images"] == 2 and report["split"] == "test"


def test_malformed_voc_xml_names_the_file(tmp_path):
    root = _voc(tmp_path, {"000001": [("dog", (10, 10, 50, 40))]})
    (root / "VOC2007/Annotations/000001.xml").write_text("<annotation><size><width>100</wid")
    with pytest.raises(DataError, match=r"Annotations/000001\.xml: malformed VOC annotation XML"):
        _voc_dataset(root)


def test_empty_test_image_stops_before_training_and_empty_train_image_is_skipped(tmp_path):
    root = _voc(tmp_path, {"000001": [("dog", (10, 10, 50, 40))], "000002": [("dog", (10, 10, 50, 40))]})
    (root / "VOC2007/JPEGImages/000002.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"JPEGImages/000002\.jpg: image missing or empty; 1 such image"):
        _voc_dataset(root, test_mode=True)  # at construction, i.e. before any training
    (root / "VOC2007/ImageSets/Main/trainval.txt").write_text("000001\n000002\n")
    DATA_REPORTS.clear()
    ds = _voc_dataset(root, test_mode=False, split="trainval")
    assert len(ds) == 1
    (report,) = DATA_REPORTS.values()
    assert report["skipped_images"] == 1 and report["skipped_image_examples"][0].endswith("000002.jpg")


def test_undecodable_image_names_its_path(tmp_path):
    bad = tmp_path / "truncated.jpg"
    Image.new("RGB", (32, 32)).save(tmp_path / "ok.jpg")
    bad.write_bytes((tmp_path / "ok.jpg").read_bytes()[:40])
    load = MixbenchLoadImageFromFile()
    assert load.transform({"img_path": str(tmp_path / "ok.jpg")})["img"].shape == (32, 32, 3)
    with pytest.raises(DataError, match=r"truncated\.jpg: unreadable image"):
        load.transform({"img_path": str(bad)})


def _coco(root: Path, anns: list[dict], extra_images: int = 0) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(1, 3 + extra_images):
        Image.fromarray(np.zeros((80, 100, 3), np.uint8)).save(root / "images" / f"{i}.jpg")
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 80})
    cats = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    for k, a in enumerate(anns, 1):
        a.setdefault("id", k)
        a.setdefault("iscrowd", 0)
        a.setdefault("area", a["bbox"][2] * a["bbox"][3])
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def _coco_dataset(root: Path) -> MixbenchCocoDataset:
    return MixbenchCocoDataset(data_root=str(root), ann_file="ann.json", data_prefix=dict(img="images/"),
                               test_mode=True, pipeline=[])


def test_coco_counts_dropped_annotations_per_reason(tmp_path):
    root = _coco(tmp_path, [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30]},     # kept
        {"image_id": 1, "category_id": 999, "bbox": [10, 10, 30, 30]},   # unknown category
        {"image_id": 77, "category_id": 1, "bbox": [10, 10, 30, 30]},    # unknown image id
        {"image_id": 2, "category_id": 18, "bbox": [10, 10, 0, 30]},     # zero width
        {"image_id": 2, "category_id": 18, "bbox": [90, 70, 30, 30]},    # reaches outside 100x80: clipped
    ])
    DATA_REPORTS.clear()
    ds = _coco_dataset(root)
    boxes = sorted(i["bbox"] for d in (ds.get_data_info(k) for k in range(len(ds))) for i in d["instances"])
    assert boxes == [[10, 10, 40, 40], [90, 70, 100, 80]]
    (report,) = DATA_REPORTS.values()
    assert report["dropped_annotations"] == {"unknown category": 1, "unknown image id": 1,
                                             "box wholly outside the image or zero size": 1}
    assert report["clipped_boxes"] == 1


def test_truncated_coco_json_names_the_file(tmp_path):
    root = _coco(tmp_path, [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30]}])
    text = (root / "ann.json").read_text()
    (root / "ann.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"ann\.json: malformed COCO annotation JSON"):
        _coco_dataset(root)


def test_runner_swaps_in_the_checked_types_for_every_dataset(tmp_path):
    from mixbench.transfer.checkpoint import Checkpoint
    from mixbench.transfer.config import build_config

    cfg = build_config(Path(__file__).resolve().parents[2] / "configs/transfer/demo/"
                       "mask-rcnn_r18_fpn_frozen-bn_demo_coco.py", Checkpoint("random", None), tmp_path)
    for loader in ("train_dataloader", "test_dataloader"):  # the demo has no val loader
        ds = cfg[loader]["dataset"]
        ds = ds["dataset"] if "dataset" in ds else ds
        assert ds["type"] == "MixbenchCocoDataset"
        assert ds["pipeline"][0]["type"] == "MixbenchLoadImageFromFile"


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["voc", "coco"])
def test_missing_test_image_stops_the_run_before_the_first_training_iteration(tmp_path, synthetic_root, suite):
    """The test split is built with the model, not after training: no epoch trains, no record is written."""
    import shutil

    from mixbench.transfer.checkpoint import Checkpoint
    from mixbench.transfer.runner import run_transfer

    demo = Path(__file__).resolve().parents[2] / "configs/transfer/demo"
    config = demo / {"voc": "faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py",
                     "coco": "mask-rcnn_r18_fpn_frozen-bn_demo_coco.py"}[suite]
    data = tmp_path / "data"
    shutil.copytree(synthetic_root[suite], data / synthetic_root[suite].name)  # the session's copy stays whole
    if suite == "voc":
        test_ids = (data / "VOCdevkit/VOC2007/ImageSets/Main/test.txt").read_text().split()
        gone = data / f"VOCdevkit/VOC2007/JPEGImages/{test_ids[-1]}.jpg"
    else:
        from mmengine.config import Config

        ann = Config.fromfile(str(config)).test_dataloader.dataset.ann_file
        images = json.loads((data / "coco" / ann).read_text())["images"]
        prefix = Config.fromfile(str(config)).test_dataloader.dataset.data_prefix["img"]
        gone = data / "coco" / prefix / images[-1]["file_name"]
    gone.unlink()
    with pytest.raises(DataError, match=rf"{gone.name}: image missing or empty; 1 such image\(s\) in the evaluation"):
        run_transfer(config, Checkpoint(name="random", path=None), records_dir=tmp_path / "rec",
                     work_root=tmp_path / "wd", data_dir=data,
                     cfg_options={"train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False})
    assert not list((tmp_path / "wd").rglob("epoch_*.pth"))  # not a single epoch trained
    assert not (tmp_path / "rec").exists()
