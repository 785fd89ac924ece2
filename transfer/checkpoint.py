"""The backbone a transfer starts from: a checkpoint spec, its conversion to mmdet, and the check that it loaded.

A spec is ``random`` (mmdet's own initialisation), ``PATH`` or ``NAME=PATH``; the name keys work dirs, records and
table rows. A file in any layout ``mixbench convert`` reads is converted once per content into
``<cache>/<sha256>.pth`` (:func:`prepare_checkpoint`). After mmengine initialised the detector, every backbone tensor
is compared with that file (:func:`check_backbone_loaded`): mmengine's ``PretrainedInit`` loads with
``strict=False`` and only warns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mixbench.base.checkpoint_meta import ConvertMeta, MetaError

__all__ = ["RANDOM", "Checkpoint", "TransferError", "backbone_mismatches", "check_backbone_loaded", "converted_meta",
           "default_checkpoint_name", "parse_checkpoint", "prepare_checkpoint"]

RANDOM = "random"


class TransferError(RuntimeError):
    """A transfer run cannot go on (bad checkpoint, backbone not loaded, bad config); the message says why."""


@dataclass
class Checkpoint:
    """A pre-trained backbone to transfer: a file any converter layout reads, or random initialisation."""

    name: str
    path: Path | None  # None: random init (mmdet's default ResNet initialisation)
    sha256: str | None = None
    converted: Path | None = None
    meta: ConvertMeta | None = None  # the converted file's metadata, set by prepare_checkpoint

    @property
    def is_random(self) -> bool:
        return self.path is None


def default_checkpoint_name(path: Path) -> str:
    """``moco_r50.pth`` -> ``moco_r50``; mmengine's ``<work_dir>/epoch_200.pth`` -> ``<work_dir name>_epoch_200``."""
    stem = path.name.split(".")[0]
    if re.fullmatch(r"(epoch|iter)_\d+|latest|last|checkpoint|model_final", stem):
        return f"{path.resolve().parent.name}_{stem}"
    return stem


def parse_checkpoint(spec: str) -> Checkpoint:
    """``random``, ``PATH`` or ``NAME=PATH``. The name keys work dirs, records and table rows."""
    if spec == RANDOM:
        return Checkpoint(name=RANDOM, path=None)
    name, sep, path = spec.partition("=")
    p = Path(path if sep else spec)
    if p.is_dir():
        raise ValueError(f"{p}: is a directory, not a checkpoint file")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such checkpoint file (give a file, NAME=FILE, or '{RANDOM}')")
    name = name if sep else default_checkpoint_name(p)
    if not re.fullmatch(r"[\w.+-]+", name):
        raise ValueError(f"checkpoint name {name!r}: use letters, digits, '.', '_', '+', '-' only")
    return Checkpoint(name=name, path=p)


def converted_meta(converted: Any, path: Path) -> ConvertMeta:
    """The converter's metadata of a converted file (``meta['mixbench_convert']``: pixel statistics, colour order,
    source layout, notes); a file without it, with a malformed one or without a state_dict is refused."""
    meta = converted.get("meta", {}).get("mixbench_convert") if isinstance(converted, dict) else None
    if not meta or "state_dict" not in converted:
        raise TransferError(f"{path}: converted file lacks state_dict or meta['mixbench_convert']; delete it")
    try:
        return ConvertMeta.from_dict(meta, str(path))
    except MetaError as err:
        raise TransferError(f"{err}; delete it") from None


def prepare_checkpoint(ckpt: Checkpoint, cache_dir: str | Path) -> Checkpoint:
    """Convert ``ckpt`` to an mmdet backbone file in ``cache_dir/<sha256>.pth`` (once per content)."""
    if ckpt.is_random:
        return ckpt
    from mixbench.base.io import sha256_file
    from mixbench.base.safe_load import safe_torch_load

    ckpt.sha256 = sha256_file(ckpt.path)
    out = Path(cache_dir) / f"{ckpt.sha256}.pth"
    if not out.is_file():
        from mixbench.convert.api import convert_checkpoint

        try:
            convert_checkpoint(ckpt.path, out, to="mmdet")
        except (KeyError, ValueError, RuntimeError) as err:
            raise TransferError(f"{ckpt.path}: cannot be converted to an mmdet backbone: {err}") from err
    ckpt.converted, ckpt.meta = out, converted_meta(safe_torch_load(out), out)
    for note in ckpt.meta.notes:
        print(f"[transfer] {ckpt.name}: conversion note: {note}")
    return ckpt


def backbone_mismatches(backbone: torch.nn.Module, expected: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Compare a backbone's tensors with a converted state_dict; empty lists mean every key loaded.

    ``num_batches_tracked`` is ignored: it counts BN updates and some sources do not save it.
    """
    have = {k: v for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    want = {k: v for k, v in expected.items() if not k.endswith("num_batches_tracked")}
    shape = [k for k in have.keys() & want.keys() if have[k].shape != want[k].shape]
    value = [k for k in have.keys() & want.keys()
             if k not in shape and not torch.equal(have[k].cpu(), want[k].to(have[k].dtype).cpu())]
    return {"missing": sorted(have.keys() - want.keys()), "unexpected": sorted(want.keys() - have.keys()),
            "shape": sorted(shape), "value": sorted(value)}


def check_backbone_loaded(backbone: torch.nn.Module, converted: Path, context: str) -> None:
    """Raise :class:`TransferError` unless every backbone tensor equals the converted file's."""
    from mixbench.base.safe_load import safe_torch_load

    bad = backbone_mismatches(backbone, safe_torch_load(converted)["state_dict"])
    if any(bad.values()):
        detail = "; ".join(f"{len(v)} {k} (e.g. {', '.join(v[:3])})" for k, v in bad.items() if v)
        raise TransferError(
            f"{context}: the backbone did not load from {converted}: {detail}. mmengine loads with strict=False "
            "and would silently train these from scratch; check that the checkpoint matches the config's "
            "backbone (depth, width) and is a backbone checkpoint."
        )
