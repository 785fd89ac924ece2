"""Source layouts: read a checkpoint safely and tell, from its keys, which layout it is.

Each layout names the key map (``convert.keymaps``) that turns it into torchvision ResNet keys. Detection
looks at keys only (plus our own metadata where present), never at file names, and says what it saw.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mixbench.base.checkpoint_meta import ConvertMeta, MetaError, PretrainMeta
from mixbench.base.safe_load import CorruptCheckpointError, UnsafeCheckpointError, safe_torch_load
from mixbench.convert import catalog, keymaps
from mixbench.convert.errors import ConversionError
from mixbench.convert.keymaps import Rule

__all__ = ["LAYOUTS", "DetectedSource", "Layout", "describe_file", "detect", "explain", "load_source",
           "sidecar_meta_path"]


@dataclass(frozen=True)
class Layout:
    """A known checkpoint layout: its key map, or (``rules is None``) why it is recognised but refused."""

    name: str
    description: str
    rules: tuple[Rule, ...] | None
    refusal: str = ""
    encoder: str = ""  # which encoder is taken, by the method's own convention (convert.catalog)


_CMC_OFFICIAL_REFUSAL = (
    "the official CMC release (HobbitLong/CMC, MyResNetsCMC: keys '[encoder.module.]l_to_ab.*' / "
    "'ab_to_l.*') cannot become a standard ResNet: in its models/resnet.py each half keeps a full 64-channel "
    "stem (conv1 = Conv2d(in_channel, 64), only the four stages are scaled by width), so the two halves side "
    "by side would have a 128-channel stem; and its train_CMC.py feeds Lab, a non-linear colour transform "
    "that no conv1 can absorb. Convert a mixbench CMC checkpoint (encoder_l.*/encoder_ab.*, YCbCr) instead"
)

_RULES: dict[str, tuple[Rule, ...] | None] = {
    "mixbench-mmdet": keymaps.MMDET_RULES,
    "mixbench-moco": keymaps.MOCO_RULES,
    "mixbench-cmc": keymaps.CMC_RULES,
    "moco-public": keymaps.MOCO_PUBLIC_RULES,
    "moco-v3": keymaps.MOCO_V3_RULES,
    "simsiam": keymaps.SIMSIAM_RULES,
    "swav": keymaps.SWAV_RULES,
    "dino-full": keymaps.DINO_FULL_RULES,
    "barlow-full": keymaps.BARLOW_FULL_RULES,
    "solo-learn": keymaps.SOLO_LEARN_RULES,
    "vissl": keymaps.VISSL_RULES,
    "mmselfsup": keymaps.MMSELFSUP_RULES,
    "torchvision": keymaps.TORCHVISION_RULES,
    "cmc-official": None,
}
if set(_RULES) != set(catalog.LAYOUTS):  # one list of names (the catalog, torch-free for the CLI)
    raise ImportError(f"convert.catalog and convert.sources disagree: {sorted(set(_RULES) ^ set(catalog.LAYOUTS))}")

LAYOUTS: dict[str, Layout] = {
    name: Layout(
        name,
        info.keys,
        _RULES[name],
        _CMC_OFFICIAL_REFUSAL if _RULES[name] is None else "",
        info.encoder,
    )
    for name, info in catalog.LAYOUTS.items()
}

_EXPECTED = (
    "expected a ResNet checkpoint in a known layout ("
    + ", ".join(name for name, lay in LAYOUTS.items() if lay.rules is not None)
    + "; `mixbench convert --list-layouts` shows the releases each one covers)"
)
_WHAT_TO_DO = (
    "if the file is one of the known layouts but was detected as another, force it with --layout NAME "
    "(`mixbench convert --list-layouts`); if it is a different ResNet release, its keys need a rule in "
    "convert/keymaps.py"
)


@dataclass
class DetectedSource:
    """A loaded source: its layout, its flat tensor dict, and the metadata we can use from it."""

    layout: Layout
    state_dict: dict[str, Any]
    container: str | None  # where the tensors were: 'state_dict', 'model', 'teacher+student', VISSL's, None (top)
    reason: str  # what in the keys decided the layout
    pretrain_meta: PretrainMeta | None = None  # checkpoint['meta']['mixbench'] of a mixbench pretraining run
    convert_meta: ConvertMeta | None = None  # an earlier conversion's meta['mixbench_convert']


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
        # DINO's full checkpoints store their command line as an argparse.Namespace. It is a plain attribute bag
        # (no __setstate__/__reduce__ of its own), and its values still go through the weights-only unpickler,
        # so allowing the class lets those files load without allowing any code.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return safe_torch_load(path)
    except CorruptCheckpointError:
        raise
    except (ValueError, UnsafeCheckpointError) as err:
        if path.suffix == ".pkl":
            raise ConversionError(
                f"{path}: refused: a .pkl (detectron2-style pickle) that torch.load(weights_only=True) "
                "cannot read. Reading it would need pickle.load, which runs any code the file names, so "
                "mixbench does not; nothing from the file was run. The detectron2 format is an output only: "
                f"convert from the original checkpoint instead. (torch: {str(err).splitlines()[0][:300]})"
            ) from None
        raise


_VISSL_MODEL = ("classy_state_dict", "base_model", "model")


def _has_tensors(obj: Any) -> bool:
    return isinstance(obj, Mapping) and any(isinstance(v, torch.Tensor) for v in obj.values())


def _flatten(obj: Mapping, prefix: str = "") -> dict[str, Any]:
    """Nested dicts of tensors -> one flat dict with dotted keys (VISSL keeps trunk and heads apart)."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _find_state_dict(obj: Any, where: str) -> tuple[dict[str, Any], str | None]:
    """The tensors of a loaded file, flat, and where they were. Two releases keep more than one network:
    VISSL (trunk and heads under classy_state_dict.base_model.model) and DINO's full checkpoint (teacher and
    student); both are flattened with their part as prefix, so the key map names what it keeps and drops."""
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{where}: holds a {type(obj).__name__}, not a dict of tensors; {_EXPECTED}")
    vissl: Any = obj
    for part in _VISSL_MODEL:
        vissl = vissl.get(part) if isinstance(vissl, Mapping) else None
    if isinstance(vissl, Mapping) and isinstance(vissl.get("trunk"), Mapping):
        return _flatten(vissl), ".".join(_VISSL_MODEL)
    if _has_tensors(obj.get("teacher")) and _has_tensors(obj.get("student")):
        return _flatten({"teacher": obj["teacher"], "student": obj["student"]}), "teacher+student"
    for container in ("state_dict", "model", "net"):  # 'net': the common CIFAR training scripts' checkpoint
        inner = obj.get(container)
        if _has_tensors(inner):
            return dict(inner), container
    if _has_tensors(obj):
        return dict(obj), None
    raise ConversionError(
        f"{where}: no tensors at the top level or under 'state_dict'/'model'/'net'/'teacher'/'classy_state_dict'; "
        f"{_EXPECTED}. {describe_file(obj, {}, None)}"
    )


def _auto_layout(obj: Mapping, sd: dict[str, Any], container: str | None) -> tuple[str, str] | None:
    """(layout name, what decided it), or None. Order matters: most specific first."""
    keys = list(sd)

    def has(prefix: str, ddp: bool = False) -> bool:
        """A key starts with ``prefix`` (or, with ``ddp``, with ``module.`` + ``prefix``)."""
        return any(k.startswith(prefix) or (ddp and k.startswith(f"module.{prefix}")) for k in keys)

    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    if container == "state_dict" and isinstance(meta.get("mixbench_convert"), Mapping):
        return "mixbench-mmdet", "meta['mixbench_convert'] present"
    if any(".l_to_ab." in f".{k}" or ".ab_to_l." in f".{k}" for k in keys):
        return "cmc-official", "keys under l_to_ab./ab_to_l."
    if has("encoder_l.") or has("encoder_ab."):
        return "mixbench-cmc", "keys under encoder_l./encoder_ab."
    if container == ".".join(_VISSL_MODEL):
        return "vissl", "tensors under classy_state_dict.base_model.model (trunk/heads)"
    if container == "teacher+student":
        return "dino-full", "'teacher' and 'student' networks side by side"
    if has("module.encoder_q."):
        return "moco-public", "keys under module.encoder_q."
    if has("base_encoder.", ddp=True):
        return "moco-v3", "keys under [module.]base_encoder."
    if has("encoder.", ddp=True) and has("predictor.", ddp=True):
        return "simsiam", "keys under [module.]encoder. with a [module.]predictor."
    if has("backbone.", ddp=True) and ("bn.running_mean" in sd or "module.bn.running_mean" in sd):
        return "barlow-full", "keys under [module.]backbone. with Barlow Twins' [module.]bn. on the embeddings"
    if has("backbone.") and (has("momentum_backbone.") or has("classifier.") or has("projector.")):
        return "solo-learn", "keys under backbone. with momentum_backbone./projector./classifier."
    if has("backbone."):
        return "mmselfsup", "keys under backbone."
    if has("encoder_q."):
        return "mixbench-moco", "keys under encoder_q."
    if ("conv1.weight" in sd or "module.conv1.weight" in sd) and (
        has("projection_head.", ddp=True) or has("prototypes.", ddp=True)
    ):
        return "swav", "torchvision keys with SwAV's projection_head./prototypes."
    if "conv1.weight" in sd or "module.conv1.weight" in sd:
        return "torchvision", "top-level conv1.weight/layerX.* keys"
    return None


def _shape(v: Any) -> str:
    return str(tuple(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__


_HEAD = re.compile(r"(?:^|\.)(fc|linear|classifier|heads?|projector|projection_head|prototypes\w*|predictor)\.")


def describe_file(obj: Any, sd: Mapping[str, Any], container: str | None) -> str:
    """What a file looks like, for refusals: top-level keys, where the tensors were, the first keys, the stem
    and any head with shapes, and the stages with their block counts (a CIFAR ResNet shows as such)."""
    top = list(obj)[:10] if isinstance(obj, Mapping) else []
    parts = [f"file structure: top-level keys {top}"]
    if not sd:
        return parts[0]
    parts.append(f"{len(sd)} tensors under {container!r}" if container else f"{len(sd)} tensors at the top level")
    parts.append(f"first keys {list(sd)[:6]}")
    stems = sorted((k for k in sd if k.endswith("conv1.weight") and ".layer" not in f".{k}"), key=len)
    if stems:
        stem = stems[0]
        prefix = stem[: -len("conv1.weight")]
        w = sd[stem]
        kind = ""
        if isinstance(w, torch.Tensor) and w.ndim == 4 and tuple(w.shape[2:]) == (3, 3):
            kind = (" = a CIFAR-style 3x3 stem: it was trained on 32x32 images without the 7x7/stride-2 stem and "
                    "max-pool, so it cannot become a detection backbone (torchvision/mmdet/detectron2 ResNets "
                    "have a 7x7 stride-2 stem); use an ImageNet-resolution checkpoint")
        parts.append(f"stem {stem} {_shape(w)}{kind}")
        blocks = {}
        for k in sd:
            m = re.match(rf"{re.escape(prefix)}layer(\d+)\.(\d+)\.", k)
            if m:
                blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        if blocks:
            stages = ", ".join(f"layer{n}: {len(b)} blocks" for n, b in sorted(blocks.items()))
            note = " (a torchvision ResNet has 4)" if len(blocks) != 4 else ""
            parts.append(f"{len(blocks)} stages ({stages}){note}")
    heads = [f"{k} {_shape(v)}" for k, v in sd.items() if _HEAD.search(k) and k.endswith("weight")]
    if heads:
        parts.append(f"head weights {heads[:4]}" + (f" and {len(heads) - 4} more" if len(heads) > 4 else ""))
    return "; ".join(parts)


def explain(obj: Any, detected: DetectedSource | None) -> str:
    """The context every refusal carries: the layout assumed (and why), the file's structure, what to do."""
    assumed = (
        f"assumed layout: {detected.layout.name} ({detected.reason})" if detected else "no layout matched"
    )
    sd = detected.state_dict if detected else {}
    container = detected.container if detected else None
    return f"{assumed}. {describe_file(obj, sd, container)}. What to do: {_WHAT_TO_DO}"


def detect(obj: Any, path: str | Path, source: str = "auto") -> DetectedSource:
    """Find the tensors in a loaded checkpoint and decide its layout (or use ``source`` if not 'auto').

    Raises:
        ConversionError: no tensors, an unknown layout (naming what was expected and the file's structure), or a
            recognised but unconvertible layout (saying why).
    """
    where = str(path)
    sd, container = _find_state_dict(obj, where)
    if source == "auto":
        found = _auto_layout(obj, sd, container)
        if found is None:
            raise ConversionError(
                f"{where}: not a ResNet checkpoint of any known layout; {_EXPECTED}. First keys found: "
                f"{list(sd)[:8]}. {describe_file(obj, sd, container)}. What to do: {_WHAT_TO_DO}"
            )
        name, reason = found
    elif source in LAYOUTS:
        name, reason = source, "chosen with --layout"
    else:
        raise ConversionError(f"unknown source layout {source!r}; choose 'auto' or one of {sorted(LAYOUTS)}")
    layout = LAYOUTS[name]
    if layout.rules is None:
        raise ConversionError(f"{where}: refused: {layout.refusal}")

    pretrain_meta, convert_meta = _read_meta(obj, where)
    side = sidecar_meta_path(path)
    if name == "torchvision" and side.is_file():  # our own torchvision output: its metadata sits beside it
        try:
            convert_meta = ConvertMeta.from_dict(json.loads(side.read_text())["mixbench_convert"], str(side))
        except (ValueError, KeyError, TypeError) as err:
            raise ConversionError(f"{side}: unreadable mixbench metadata ({err})") from None
        reason += f" + metadata from {side.name}"
    if convert_meta is not None and pretrain_meta is None:
        pretrain_meta = convert_meta.mixbench
    return DetectedSource(layout, sd, container, reason, pretrain_meta, convert_meta)


def _read_meta(obj: Mapping, where: str) -> tuple[PretrainMeta | None, ConvertMeta | None]:
    """The file's own ``meta['mixbench']`` and ``meta['mixbench_convert']``, checked field by field."""
    meta = obj.get("meta") if isinstance(obj.get("meta"), Mapping) else {}
    try:
        pretrain = PretrainMeta.from_dict(meta["mixbench"], where) if meta.get("mixbench") else None
        converted = ConvertMeta.from_dict(meta["mixbench_convert"], where) if meta.get("mixbench_convert") else None
    except MetaError as err:
        raise ConversionError(str(err)) from None
    return pretrain, converted
