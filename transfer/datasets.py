"""mmdet's VOC and COCO datasets with bad data named or counted.

mmdet 3.3 raises a bare ``ParseError`` for a malformed VOC XML and a bare ``JSONDecodeError`` for a truncated
COCO JSON (neither names the file), decodes a zero-byte test image only after training (a cv2 error, no name),
and drops annotations (VOC: unknown class; COCO: unknown category, unknown image id, zero size) without a count,
while boxes reaching outside the image are kept as they are. These subclasses keep mmdet's parsing and add:

Policy, the same for every dataset:
  * a malformed annotation file (XML, JSON) stops the run with its path (:class:`DataError`);
  * an annotation that cannot be used is dropped and counted per reason; a box reaching outside its image is
    clipped to it and counted; the counts are logged once per dataset and go into the run record;
  * an image file that is missing or empty: in a training split it is skipped and counted (with the first few
    names); in a test/val split it stops the run before training (a benchmark on a subset is not the benchmark):
    every val/test image is checked when its dataset is built, and :func:`check_eval_splits` builds them before
    the first training iteration (mmengine would build the test split only after training);
  * an image that exists but cannot be decoded stops the run with its path when it is loaded
    (:class:`MixbenchLoadImageFromFile`).

:func:`mixbench.transfer.config.build_config` swaps mmdet's ``VOCDataset``/``CocoDataset``/``LoadImageFromFile``
for these in every config, so the configs stay mmdet's.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import CocoDataset, VOCDataset
from mmdet.registry import DATASETS, TRANSFORMS
from mmengine.logging import print_log

from mixbench.base.io import DataError

__all__ = ["DATA_REPORTS", "DataError", "MixbenchCocoDataset", "MixbenchLoadImageFromFile", "MixbenchVOCDataset",
           "SWAPS", "check_eval_splits", "data_report"]

# mmdet type -> ours (build_config applies it to every leaf dataset and pipeline step)
SWAPS = {"VOCDataset": "MixbenchVOCDataset", "CocoDataset": "MixbenchCocoDataset",
         "LoadImageFromFile": "MixbenchLoadImageFromFile"}
FIRST_NAMES = 5
# What each dataset built in this process dropped, clipped or skipped, by "<split>: <annotation file>".
DATA_REPORTS: dict[str, dict[str, Any]] = {}


def _clip(bbox: list[float], width: int, height: int) -> tuple[list[float], bool]:
    """Clip ``[x1, y1, x2, y2]`` to the image ``[0, width] x [0, height]``; returns (box, whether it changed)."""
    x1, y1, x2, y2 = bbox
    out = [min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height)]
    return out, out != list(bbox)


class _Checked:
    """Counting and the image-file policy shared by the VOC and COCO subclasses."""

    def full_init(self) -> None:
        """mmengine builds the data list lazily; the report of what was dropped follows the first full build."""
        if self._fully_initialized:
            return
        super().full_init()
        self._finish_report(self.ann_file)

    def _start_report(self) -> None:
        self.dropped: Counter[str] = Counter()
        self.clipped = 0
        self.skipped_images: list[str] = []

    def _check_instances(self, data_info: dict) -> dict:
        """Drop degenerate boxes and clip boxes reaching outside the image, counting both."""
        kept = []
        for inst in data_info.get("instances", []):
            box, changed = _clip(inst["bbox"], data_info["width"], data_info["height"])
            if box[2] <= box[0] or box[3] <= box[1]:
                self.dropped["degenerate box (x2 <= x1 or y2 <= y1, or wholly outside the image)"] += 1
                continue
            if changed:
                self.clipped += 1
                inst["bbox"] = box
            kept.append(inst)
        data_info["instances"] = kept
        return data_info

    def _check_image_files(self, data_list: list[dict], source: str) -> list[dict]:
        bad = [d for d in data_list if not os.path.isfile(d["img_path"]) or os.path.getsize(d["img_path"]) == 0]
        if not bad:
            return data_list
        names = [d["img_path"] for d in bad]
        if self.test_mode:
            raise DataError(f"{names[0]}: image missing or empty; {len(bad)} such image(s) in the evaluation split "
                            f"of {source} (e.g. {', '.join(names[:FIRST_NAMES])}). An evaluation without them "
                            "would not be the benchmark: restore the files.")
        self.skipped_images = names
        bad_ids = {id(d) for d in bad}
        return [d for d in data_list if id(d) not in bad_ids]

    def _finish_report(self, source: str) -> None:
        report = {"source": source, "split": "test" if self.test_mode else "train",
                  "images": len(self),
                  "dropped_annotations": dict(self.dropped), "clipped_boxes": self.clipped,
                  "skipped_images": len(self.skipped_images),
                  "skipped_image_examples": self.skipped_images[:FIRST_NAMES]}
        DATA_REPORTS[f"{report['split']}: {source}"] = report
        if self.dropped or self.clipped or self.skipped_images:
            parts = [f"{n} annotations dropped: {reason}" for reason, n in sorted(self.dropped.items())]
            parts += [f"{self.clipped} boxes clipped to their image"] if self.clipped else []
            if self.skipped_images:
                parts.append(f"{len(self.skipped_images)} images missing or empty, skipped (e.g. "
                             f"{', '.join(self.skipped_images[:FIRST_NAMES])})")
            print_log(f"{source}: " + "; ".join(parts), logger="current")


@DATASETS.register_module()
class MixbenchVOCDataset(_Checked, VOCDataset):
    """mmdet's ``VOCDataset``; a malformed XML names its file, dropped objects are counted (see module doc)."""

    def load_data_list(self) -> list[dict]:
        self._start_report()
        data_list = super().load_data_list()
        return self._check_image_files(data_list, self.ann_file)

    def parse_data_info(self, img_info: dict) -> dict:
        try:
            return self._check_instances(super().parse_data_info(img_info))
        except ET.ParseError as err:
            raise DataError(f"{img_info['xml_path']}: malformed VOC annotation XML ({err})") from None
        except DataError:
            raise
        except Exception as err:  # a missing <size>/<bndbox> field, a bad number, or (no <size>) an unreadable image
            raise DataError(f"{img_info['xml_path']}: unusable VOC annotation or its image "
                            f"({type(err).__name__}: {err})") from None

    def _parse_instance_info(self, raw_ann_info: ET.ElementTree, minus_one: bool = True) -> list[dict]:
        classes = self._metainfo["classes"]
        unknown = [o.find("name").text for o in raw_ann_info.findall("object") if o.find("name").text not in classes]
        self.dropped["unknown class"] += len(unknown)  # mmdet skips these objects without a word
        return super()._parse_instance_info(raw_ann_info, minus_one=minus_one)


@DATASETS.register_module()
class MixbenchCocoDataset(_Checked, CocoDataset):
    """mmdet's ``CocoDataset``; a malformed JSON names its file, dropped annotations are counted (module doc)."""

    def load_data_list(self) -> list[dict]:
        self._start_report()
        api = type(self).COCOAPI

        def counting_api(path: str):
            coco = api(path)
            images = set(coco.imgs)
            orphans = sum(1 for a in coco.dataset.get("annotations", []) if a.get("image_id") not in images)
            self.dropped["unknown image id"] += orphans  # indexed by pycocotools, never visited by mmdet
            return coco

        self.COCOAPI = counting_api
        try:
            data_list = super().load_data_list()
        except json.JSONDecodeError as err:
            raise DataError(f"{self.ann_file}: malformed COCO annotation JSON ({err})") from None
        finally:
            del self.COCOAPI
        return self._check_image_files(data_list, self.ann_file)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        img = raw_data_info["raw_img_info"]
        for ann in raw_data_info["raw_ann_info"]:  # the reasons mmdet's parse_data_info skips an annotation
            if ann.get("ignore", False):
                self.dropped["marked ignore"] += 1
                continue
            x1, y1, w, h = ann["bbox"]
            if max(0, min(x1 + w, img["width"]) - max(x1, 0)) * max(0, min(y1 + h, img["height"]) - max(y1, 0)) == 0:
                self.dropped["box wholly outside the image or zero size"] += 1
            elif ann["area"] <= 0 or w < 1 or h < 1:
                self.dropped["zero area or width/height < 1"] += 1
            elif ann["category_id"] not in self.cat_ids:
                self.dropped["unknown category"] += 1
        return self._check_instances(super().parse_data_info(raw_data_info))


@TRANSFORMS.register_module()
class MixbenchLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile``; an image that cannot be decoded stops the run with its path.

    mmcv's OpenCV decoding already gives the 8-bit RGB of :mod:`mixbench.base.images` for every mode (16-bit
    samples by their high byte, 32-bit samples refused), so detection keeps mmdet's decoder (EXIF orientation
    included) and the tests hold the two to the same pixels.
    """

    def transform(self, results: dict) -> dict:
        try:
            out = super().transform(results)
        except Exception as err:  # cv2/PIL/turbojpeg each raise their own types; all mean "this file is bad"
            raise DataError(f"{results['img_path']}: unreadable image ({type(err).__name__}: {err})") from None
        if out is None or out.get("img") is None:
            raise DataError(f"{results['img_path']}: unreadable image (decoder returned nothing)")
        return out


def check_eval_splits(runner: Any) -> None:
    """Build ``runner``'s val and test datasets now, so a missing or empty evaluation image stops the run before
    the first training iteration (the checked datasets stat every image when built; mmengine builds a loop's
    dataloader when the loop first runs, which for the test split is after training)."""
    for name in ("val_loop", "test_loop"):
        loop = getattr(runner, name)  # the property builds the loop, its dataloader and its dataset
        if loop is not None:
            loop.dataloader.dataset.full_init()  # a no-op once built; lazy_init=True datasets are built here


def data_report() -> dict[str, dict[str, Any]]:
    """What the datasets built in this process dropped, clipped or skipped (for the run record)."""
    return {k: dict(v) for k, v in DATA_REPORTS.items()}
