"""Target writers: torchvision state_dict, mmdet backbone file, detectron2 model-zoo pickle.

All three take the checked torchvision-named backbone tensors (no fc) and write atomically.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from mixbench.base.io import atomic_torch_save, atomic_write, atomic_write_json
from mixbench.convert.errors import ConversionError
from mixbench.convert.keymaps import DETECTRON2_RULES, MappingResult, apply_rules
from mixbench.convert.sources import sidecar_meta_path

__all__ = ["TARGETS", "detectron2_settings", "write_target"]

TARGETS = ("torchvision", "mmdet", "detectron2")


def detectron2_settings(arch: str, pixel_mean: list[float], pixel_std: list[float]) -> dict:
    """The detectron2 config keys these (torchvision-style) weights need; detectron2's defaults are MSRA/caffe's.

    * ``MODEL.RESNETS.STRIDE_IN_1X1 = False``: torchvision's Bottleneck strides its 3x3 conv (ResNet v1.5);
      detectron2's default True strides the 1x1, which gives other C3-C5 features from the same weights.
    * ``INPUT.FORMAT = 'RGB'`` and ``MODEL.PIXEL_MEAN/STD`` (0-255, in that channel order): what the encoder was
      fed; detectron2's defaults are BGR with std 1 (caffe).
    * ``MODEL.RESNETS.DEPTH``; ResNet-18/34 also need ``RES2_OUT_CHANNELS = 64`` (BasicBlock stages).
    MoCo's own detectron2 configs (Base-RCNN-C4-BN.yaml) set the same values for its ResNet-50.
    """
    from mixbench.base.resnets import ARCHS

    spec = ARCHS[arch]
    settings: dict = {
        "MODEL.RESNETS.DEPTH": spec.depth,
        "MODEL.RESNETS.STRIDE_IN_1X1": False,
        "MODEL.PIXEL_MEAN": [float(v) for v in pixel_mean],
        "MODEL.PIXEL_STD": [float(v) for v in pixel_std],
        "INPUT.FORMAT": "RGB",
    }
    if not spec.bottleneck:
        settings["MODEL.RESNETS.RES2_OUT_CHANNELS"] = 64
    return settings


def _write_torchvision(sd: dict[str, torch.Tensor], out: Path, meta: dict) -> MappingResult | None:
    """A flat state_dict, loadable by ``torchvision.models.resnetN().load_state_dict(sd, strict=False)`` with
    only ``fc.*`` missing. A flat state_dict has no room for metadata, so it goes to ``OUT.meta.json``
    beside it (read back when the file is converted again)."""
    atomic_torch_save(sd, out)
    try:
        atomic_write_json(sidecar_meta_path(out), {"mixbench_convert": meta})
    except BaseException:  # weights without their metadata would be read as a foreign torchvision file
        out.unlink(missing_ok=True)
        raise
    return None


def _write_mmdet(sd: dict[str, torch.Tensor], out: Path, meta: dict) -> MappingResult | None:
    """``{'state_dict', 'meta'}``: mmdet's ``ResNet`` uses torchvision's key names, so the keys
    are final as they are; mmengine's checkpoint loader unwraps ``state_dict``."""
    atomic_torch_save({"state_dict": sd, "meta": {"mixbench_convert": meta}}, out)
    return None


def _write_detectron2(sd: dict[str, torch.Tensor], out: Path, meta: dict) -> MappingResult | None:
    """detectron2 model-zoo pickle as the MoCo authors' converter writes it: renamed keys, numpy arrays,
    ``matching_heuristics`` (lets detectron2 match the remaining name differences). Output only: reading
    such a file needs ``pickle.load``, which mixbench never does."""
    if out.suffix != ".pkl":
        raise ConversionError(f"{out}: detectron2 reads model-zoo pickles only from files ending in .pkl")
    renamed = apply_rules(sd, DETECTRON2_RULES, "detectron2 renaming")
    model = {k: v.detach().cpu().numpy() for k, v in renamed.tensors.items()}
    obj = {
        "model": model,
        "__author__": "mixbench",
        "matching_heuristics": True,
        "meta": {"mixbench_convert": meta},
    }
    atomic_write(out, lambda f: pickle.dump(obj, f))
    return renamed


_WRITERS = {"torchvision": _write_torchvision, "mmdet": _write_mmdet, "detectron2": _write_detectron2}


def write_target(to: str, sd: dict[str, torch.Tensor], out: str | Path, meta: dict) -> MappingResult | None:
    """Write ``sd`` (torchvision keys, no fc) as ``to``; returns the target renaming (detectron2) or None."""
    if to not in _WRITERS:
        raise ConversionError(f"unknown target {to!r}; choose one of {list(TARGETS)}")
    sd = {k: v.detach().contiguous() for k, v in sd.items()}
    return _WRITERS[to](sd, Path(out), meta)
