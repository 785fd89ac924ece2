"""Source layouts: read a checkpoint safely and tell, from its keys, which layout it is.

Each layout names the key map (``convert.keymaps``) that turns it into torchvision ResNet keys. Detection
looks at keys only (plus our own metadata where present), never at file names, and says what it saw.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mixbench.base.safe_load import UnsafeCheckpointError, safe_torch_load
from mixbench.convert import keymaps
from mixbench.convert.errors import ConversionError
from mixbench.convert.keymaps import Rule

__all__ = ["LAYOUTS", "DetectedSource", "Layout", "detect", "load_source", "sidecar_meta_path"]


@dataclass(frozen=True)
class Layout:
    """A known checkpoint layout: its key map, or (``rules is None``) why it is recognised but refused."""

    name: str
    description: str
    rules: tuple[Rule, ...] | None
    refusal: str = ""


_CMC_OFFICIAL_REFUSAL = (
    "the official CMC release (HobbitLong/CMC, MyResNetsCMC: keys '[encoder.module.]l_to_ab.*' / "
    "'ab_to_l.*') cannot become a standard ResNet: in its models/resnet.py each half keeps a full 64-channel "
    "stem (conv1 = Conv2d(in_channel, 64), only the four stages are scaled by width), so the two halves side "
    "by side would have a 128-channel stem; and its train_CMC.py feeds Lab, a non-linear colour transform "
    "that no conv1 can absorb. Convert a mixbench CMC checkpoint (encoder_l.*/encoder_ab.*, YCbCr) instead"
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "mixbench-mmdet",
            "mixbench mmdet backbone file (our own output; re-conversion is idempotent)",
            keymaps.MMDET_RULES,
        ),
        Layout(
            "mixbench-moco",
            "mixbench MoCo pretraining checkpoint (state_dict: encoder_q.*/encoder_k.*/queue)",
            keymaps.MOCO_RULES,
        ),
        Layout(
            "mixbench-cmc",
            "mixbench CMC pretraining checkpoint (state_dict: encoder_l.*/encoder_ab.* halves)",
            keymaps.CMC_RULES,
        ),
        Layout(
            "moco-public",
            "MoCo/MoCo v2 release layout (state_dict: module.encoder_q.*, module.encoder_k.*)",
            keymaps.MOCO_PUBLIC_RULES,
        ),
        Layout(
            "mmselfsup",
            "mmselfsup/mmpretrain checkpoint (state_dict: backbone.*, neck/head/momentum copies)",
            keymaps.MMSELFSUP_RULES,
        ),
        Layout(
            "torchvision",
            "plain torchvision ResNet state_dict (optionally under 'state_dict'/'model', "
            "optionally 'module.'-prefixed)",
            keymaps.TORCHVISION_RULES,
        ),
        Layout("cmc-official", "official CMC release (HobbitLong/CMC)", None, _CMC_OFFICIAL_REFUSAL),
    )
}

_EXPECTED = "expected a ResNet checkpoint in one of these layouts: " + "; ".join(
    f"{name} = {lay.description}" for name, lay in LAYOUTS.items() if lay.rules is not None
)


@dataclass
class DetectedSource:
    """A loaded source: its layout, its flat tensor dict, and the metadata we can use from it."""

    layout: Layout
    state_dict: dict[str, Any]
    container: str | None  # where the tensors were: 'state_dict', 'model' or None (top level)
    reason: str  # what in the keys decided the layout
    pretrain_meta: dict = field(default_factory=dict)  # checkpoint['meta']['mixbench'] (contract 2), if any
    convert_meta: dict = field(default_factory=dict)  # an earlier conversion's 'mixbench_convert', if any


def sidecar_meta_path(path: str | Path) -> Path:
    """Where the torchvision target keeps its metadata (a flat state_dict has no room for it)."""
    return Path(f"{path}.meta.json")


def load_source(path: str | Path) -> Any:
    """Read ``path`` with ``weights_only=True`` only (via :func:`safe_torch_load`).

    A ``.pkl`` that torch cannot read weights-only is refused here: it could only be read with
    ``pickle.load``, which executes whatever code the pickle names.
    """
    path = Path(path)
    try:
        return safe_torch_load(path)
    except (ValueError, UnsafeCheckpointError) as err:
        if path.suffix == ".pkl":
            raise ConversionError(
                f"{path}: refused: a .pkl (detectron2-style pickle) that torch.load(weights_only=True) "
                "cannot read. Reading it would need pickle.load, which runs any code the file names, so "
                "mixbench does not; nothing from the file was run. The detectron2 format is an output only: "
                f"convert from the original checkpoint instead. (torch: {str(err).splitlines()[0][:300]})"
            ) from None
        raise


def _find_state_dict(obj: Any, where: str) -> tuple[dict[str, Any], str | None]:
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{where}: holds a {type(obj).__name__}, not a dict of tensors; {_EXPECTED}")
    for container in ("state_dict", "model"):
        inner = obj.get(container)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return dict(inner), container
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), None
    raise ConversionError(
        f"{where}: no tensors at the top level or under 'state_dict'/'model'; {_EXPECTED}. "
        f"First keys found: {list(obj)[:8]}"
    )


def _auto_layout(obj: Mapping, sd: dict[str, Any], container: str | None) -> tuple[str, str] | None:
    """(layout name, what decided it), or None. Order matters: most specific first."""
    keys = list(sd)

    def has_prefix(p: str) -> bool:
        return any(k.startswith(p) for k in keys)

    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    if container == "state_dict" and isinstance(meta.get("mixbench_convert"), Mapping):
        return "mixbench-mmdet", "meta['mixbench_convert'] present"
    if any(".l_to_ab." in f".{k}" or ".ab_to_l." in f".{k}" for k in keys):
        return "cmc-official", "keys under l_to_ab./ab_to_l."
    if has_prefix("encoder_l.") or has_prefix("encoder_ab."):
        return "mixbench-cmc", "keys under encoder_l./encoder_ab."
    if has_prefix("module.encoder_q."):
        return "moco-public", "keys under module.encoder_q."
    if has_prefix("backbone."):
        return "mmselfsup", "keys under backbone."
    if has_prefix("encoder_q."):
        return "mixbench-moco", "keys under encoder_q."
    if "conv1.weight" in sd or "module.conv1.weight" in sd:
        return "torchvision", "top-level conv1.weight/layerX.* keys"
    return None


def detect(obj: Any, path: str | Path, source: str = "auto") -> DetectedSource:
    """Find the tensors in a loaded checkpoint and decide its layout (or use ``source`` if not 'auto').

    Raises:
        ConversionError: no tensors, an unknown layout (naming what was expected and the first keys), or a
            recognised but unconvertible layout (saying why).
    """
    where = str(path)
    sd, container = _find_state_dict(obj, where)
    if source == "auto":
        found = _auto_layout(obj, sd, container)
        if found is None:
            raise ConversionError(
                f"{where}: not a ResNet checkpoint of any known layout; {_EXPECTED}. "
                f"First keys found: {list(sd)[:8]}"
            )
        name, reason = found
    elif source in LAYOUTS:
        name, reason = source, "chosen with --source"
    else:
        raise ConversionError(f"unknown source layout {source!r}; choose 'auto' or one of {sorted(LAYOUTS)}")
    layout = LAYOUTS[name]
    if layout.rules is None:
        raise ConversionError(f"{where}: refused: {layout.refusal}")

    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    pretrain_meta = dict(meta.get("mixbench") or {})
    convert_meta = dict(meta.get("mixbench_convert") or {})
    side = sidecar_meta_path(path)
    if name == "torchvision" and side.is_file():  # our own torchvision output: its metadata sits beside it
        try:
            convert_meta = dict(json.loads(side.read_text())["mixbench_convert"])
        except (ValueError, KeyError, TypeError) as err:
            raise ConversionError(f"{side}: unreadable mixbench metadata ({err})") from None
        reason += f" + metadata from {side.name}"
    if convert_meta and not pretrain_meta:
        pretrain_meta = dict(convert_meta.get("mixbench") or {})
    return DetectedSource(layout, sd, container, reason, pretrain_meta, convert_meta)
