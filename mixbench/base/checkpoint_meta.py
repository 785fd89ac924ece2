"""The metadata a checkpoint carries, as typed records: written and read here only.

* :class:`PretrainMeta` is ``checkpoint['meta']['mixbench']``, written by every pretraining checkpoint (the MoCo
  and CMC models build it, ``MixbenchMetaHook`` stores it): method, arch, input statistics, mixture.
* :class:`ConvertMeta` is ``meta['mixbench_convert']``, written by every converted file (mmdet and detectron2 files
  hold it, a torchvision file has it in ``OUT.meta.json``): where the weights came from and how to feed them.

Both are stored as plain python types (``to_dict``), so ``torch.load(weights_only=True)`` reads them; ``from_dict``
checks every field's type and refuses unknown keys, naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

__all__ = ["ConvertMeta", "MetaError", "PretrainMeta"]


class MetaError(ValueError):
    """Checkpoint metadata with a missing, unknown or mistyped field; the message names the file and the key."""


def _number_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


# One checker per kind of field: (test, what the message says was expected).
_KINDS: dict[str, tuple[Any, str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "str?": (lambda v: v is None or isinstance(v, str), "a string or None"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "int?": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer or None"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "rgb": (_number_list, "a list of 3 numbers"),
    "rgb?": (lambda v: v is None or _number_list(v), "a list of 3 numbers or None"),
    "dict": (lambda v: isinstance(v, Mapping), "a dict"),
    "dict?": (lambda v: v is None or isinstance(v, Mapping), "a dict or None"),
    "strs": (lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v), "a list of strings"),
}


def _check(data: Any, kinds: dict[str, str], required: tuple[str, ...], where: str, record: str,
           extra: tuple[str, ...] = ()) -> None:
    if not isinstance(data, Mapping):
        raise MetaError(f"{where}: {record} is a {type(data).__name__}, not a dict")
    unknown = sorted(set(data) - set(kinds) - set(extra))
    if unknown:
        raise MetaError(f"{where}: {record} has unknown keys {unknown} (known: {sorted(kinds)})")
    missing = [k for k in required if k not in data]
    if missing:
        raise MetaError(f"{where}: {record} lacks {missing}")
    for key, kind in kinds.items():
        test, expected = _KINDS[kind]
        if key in data and not test(data[key]):
            raise MetaError(f"{where}: {record}[{key!r}] is {data[key]!r}; expected {expected}")


def _floats(values: list | None) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


@dataclass(frozen=True)
class PretrainMeta:
    """What the converter, feature extraction and transfer need from a pretraining checkpoint.

    ``settings`` are the method's own hyper-parameters (MoCo: dim, K, m, T, mlp; CMC: dim, K, T, loss), stored
    under the method's name. ``pixel_mean``/``pixel_std`` are 0-255 per channel of the encoder input (RGB for
    MoCo; CMC records its YCbCr statistics in ``color``).
    """

    method: str
    arch: str
    width: float = 1.0
    feature_dim: int | None = None
    pixel_mean: list[float] | None = None
    pixel_std: list[float] | None = None
    color: dict | None = None
    mixture: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    config_name: str | None = None

    _KINDS: ClassVar[dict[str, str]] = {
        "method": "str", "arch": "str", "width": "float", "feature_dim": "int?", "pixel_mean": "rgb?",
        "pixel_std": "rgb?", "color": "dict?", "mixture": "dict", "config_name": "str?",
    }

    def to_dict(self) -> dict[str, Any]:
        """``checkpoint['meta']['mixbench']``: plain python types."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"}
        out["mixture"], out["color"] = dict(self.mixture), None if self.color is None else dict(self.color)
        out[self.method] = dict(self.settings)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "checkpoint") -> PretrainMeta:
        """Read ``meta['mixbench']``; only ``method`` and ``arch`` are required (other files may record less)."""
        method = data.get("method") if isinstance(data, Mapping) else None
        extra = (method,) if isinstance(method, str) and method not in cls._KINDS else ()
        _check(data, cls._KINDS, ("method", "arch"), where, "meta['mixbench']", extra)
        settings = data.get(method) or {}
        if not isinstance(settings, Mapping):
            raise MetaError(f"{where}: meta['mixbench'][{method!r}] is {settings!r}; expected a dict")
        return cls(method=method, arch=data["arch"], width=float(data.get("width", 1.0)),
                   feature_dim=data.get("feature_dim"), pixel_mean=_floats(data.get("pixel_mean")),
                   pixel_std=_floats(data.get("pixel_std")), color=_plain(data.get("color")),
                   mixture=dict(data.get("mixture") or {}), settings=dict(settings),
                   config_name=data.get("config_name"))


def _plain(value: Any) -> Any:
    return None if value is None else dict(value)


@dataclass(frozen=True)
class ConvertMeta:
    """What a converted file records: its source (file, sha256, layout), the ResNet, and how to feed it.

    ``pixel_mean``/``pixel_std`` are RGB, 0-255; ``to_rgb``: the weights expect RGB input. ``notes`` say what the
    converter filled in, assumed or changed. ``previous``: the source's own provenance when a converted file was
    converted again. ``detectron2_cfg``: the detectron2 config keys the weights need (detectron2 target only).
    """

    source_sha256: str
    source_file: str
    source_layout: str
    arch: str
    depth: int
    pixel_mean: list[float]
    pixel_std: list[float]
    to_rgb: bool = True
    mixbench: PretrainMeta | None = None
    notes: list[str] = field(default_factory=list)
    previous: dict | None = None
    detectron2_cfg: dict | None = None

    _KINDS: ClassVar[dict[str, str]] = {
        "source_sha256": "str", "source_file": "str", "source_layout": "str", "arch": "str", "depth": "int",
        "pixel_mean": "rgb", "pixel_std": "rgb", "to_rgb": "bool", "mixbench": "dict?", "notes": "strs",
        "previous": "dict?", "detectron2_cfg": "dict?",
    }
    _REQUIRED: ClassVar[tuple[str, ...]] = (
        "source_sha256", "source_file", "source_layout", "arch", "depth", "pixel_mean", "pixel_std")

    def to_dict(self) -> dict[str, Any]:
        """``meta['mixbench_convert']``: plain python types."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["mixbench"] = None if self.mixbench is None else self.mixbench.to_dict()
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "converted file") -> ConvertMeta:
        """Read ``meta['mixbench_convert']``, checking every field."""
        _check(data, cls._KINDS, cls._REQUIRED, where, "meta['mixbench_convert']")
        pre = data.get("mixbench")
        pre = None if pre is None else PretrainMeta.from_dict(pre, where)
        return cls(source_sha256=data["source_sha256"], source_file=data["source_file"],
                   source_layout=data["source_layout"], arch=data["arch"], depth=data["depth"],
                   pixel_mean=_floats(data["pixel_mean"]), pixel_std=_floats(data["pixel_std"]),
                   to_rgb=data.get("to_rgb", True), mixbench=pre,
                   notes=list(data.get("notes") or []), previous=_plain(data.get("previous")),
                   detectron2_cfg=_plain(data.get("detectron2_cfg")))
