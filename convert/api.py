"""``convert_checkpoint``: a ResNet checkpoint -> torchvision / mmdet / detectron2, checked exactly.

Steps: CRC-32 check and safe load (weights_only) -> detect layout -> key map (every key renamed or dropped by a
named rule) -> float32 -> CMC fold if needed -> exact check against torchvision's own ResNet definition (no
missing, extra or misshaped key) -> atomic write with the source's sha256 in the metadata.

>>> report = convert_checkpoint('epoch_200.pth', 'r50_mmdet.pth', to='mmdet')  # doctest: +SKIP
>>> report.source_layout, report.arch, report.n_tensors  # doctest: +SKIP
('mixbench-moco', 'resnet50', 320)
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
import torchvision  # the reference architecture; imported here so a conversion's time excludes it

from mixbench.base.checkpoint_meta import ConvertMeta
from mixbench.base.color import IMAGENET_MEAN, IMAGENET_STD
from mixbench.base.io import sha256_file
from mixbench.base.resnets import ARCHS, arch_from_blocks
from mixbench.base.safe_load import has_checksums
from mixbench.convert import cmc_fold
from mixbench.convert.errors import ConversionError
from mixbench.convert.keymaps import apply_rules
from mixbench.convert.sources import DetectedSource, detect, explain, load_source
from mixbench.convert.targets import TARGETS, detectron2_settings, write_target

__all__ = [
    "ARCH_DEPTHS", "FLOAT_DTYPES", "Backbone", "ConversionReport", "as_float32_backbone", "check_finite",
    "convert_checkpoint", "expected_backbone_keys", "fill_num_batches_tracked", "infer_arch", "read_backbone",
]

ARCH_DEPTHS = {name: spec.depth for name, spec in ARCHS.items()}


@dataclass
class ConversionReport:
    """What a conversion did. ``mapping`` rows are ``(source key, new key or None if dropped, rule name)``."""

    src: Path
    out_path: Path
    to: str
    source_layout: str
    layout_reason: str
    arch: str
    n_tensors: int
    rule_counts: dict[str, int]
    mapping: list[tuple[str, str | None, str]]
    meta: ConvertMeta
    notes: list[str] = field(default_factory=list)
    target_mapping: list[tuple[str, str | None, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    target_settings: dict = field(default_factory=dict)  # detectron2: the config keys the weights need


@cache
def _expected(arch: str) -> tuple[tuple[str, torch.Size], ...]:
    if arch not in ARCH_DEPTHS:
        raise ConversionError(f"unknown arch {arch!r}; choose one of {list(ARCH_DEPTHS)}")
    with torch.device("meta"):  # shapes only: no memory, no random init cost
        model = getattr(torchvision.models, arch)(weights=None)
    return tuple((k, v.shape) for k, v in model.state_dict().items() if not k.startswith("fc."))


def expected_backbone_keys(arch: str) -> dict[str, torch.Size]:
    """Every backbone tensor of torchvision's ``arch`` (no fc), with its shape, in torchvision's order."""
    return dict(_expected(arch))


def infer_arch(sd: dict[str, torch.Tensor]) -> str | None:
    """ResNet depth from the keys: blocks per stage and whether blocks have conv3 (Bottleneck)."""
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in sd if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(len(ids))
    return arch_from_blocks(blocks, "layer1.0.conv3.weight" in sd)


def _check_backbone(sd: dict[str, torch.Tensor], arch: str, where: str) -> None:
    expected = expected_backbone_keys(arch)
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    misshaped = [
        f"{k}: {tuple(sd[k].shape)} != {tuple(s)}"
        for k, s in expected.items()
        if k in sd and sd[k].shape != s
    ]
    if missing or extra or misshaped:
        looks = infer_arch(sd)
        hint = f" (the keys look like {looks})" if looks and looks != arch else ""
        raise ConversionError(
            f"{where}: does not match torchvision's {arch}{hint}: {len(missing)} missing "
            f"{missing[:6]}, {len(extra)} extra {extra[:6]}, {len(misshaped)} misshaped {misshaped[:6]}; "
            f"expected exactly {len(expected)} tensors"
        )


def fill_num_batches_tracked(sd: dict[str, torch.Tensor], arch: str) -> list[str]:
    """Add the BatchNorm ``num_batches_tracked`` buffers a file lacks; return the keys filled.

    Files saved before PyTorch 0.4.1 (torchvision's classic ``resnet50-19c8e357.pth``, many timm and older files)
    have no such buffer. torchvision loads them anyway: ``BatchNorm._load_from_state_dict`` sees no version-2
    metadata and keeps the module's own buffer, 0 in a new model. We fill the same 0 (int64, 0-d). Only a buffer
    whose BatchNorm is otherwise present is filled, so a missing BatchNorm still fails the exact check.
    """
    filled = []
    for key in expected_backbone_keys(arch):
        bn = key.removesuffix("num_batches_tracked")
        if key.endswith("num_batches_tracked") and key not in sd and f"{bn}running_mean" in sd:
            sd[key] = torch.tensor(0, dtype=torch.long)
            filled.append(key)
    return filled


def _pixel_stats(
    detected: DetectedSource, color: dict | None, notes: list[str]
) -> tuple[list[float], list[float]]:
    if color is not None:  # CMC fold: the folded model's own statistics (see convert.cmc_fold)
        std = list(IMAGENET_STD)
        return cmc_fold.fold_pixel_mean(color), std
    for meta in (detected.convert_meta, detected.pretrain_meta):
        if meta is not None and meta.pixel_mean and meta.pixel_std:
            return list(meta.pixel_mean), list(meta.pixel_std)
    notes.append("no pixel mean/std recorded in the source: assumed ImageNet's (RGB, 0-255)")
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


@dataclass
class Backbone:
    """A checkpoint read as one torchvision ResNet backbone (no ``fc``), checked key for key.

    ``tensors`` are torchvision-keyed and complete for ``arch``, float32 (``num_batches_tracked``: int64);
    ``pixel_mean``/``pixel_std`` (0-255, RGB) are the input statistics the tensors expect. ``meta`` is what a
    converted file records (source sha256, layout, ...). ``verified``: the file's CRC-32s were checked (False for
    a legacy non-zip file, which has none).
    """

    src: Path
    source_layout: str
    layout_reason: str
    arch: str
    tensors: dict[str, torch.Tensor]
    pixel_mean: list[float]
    pixel_std: list[float]
    meta: ConvertMeta
    rule_counts: dict[str, int]
    mapping: list[tuple[str, str | None, str]]
    notes: list[str] = field(default_factory=list)
    verified: bool = True


def read_backbone(src: str | Path, arch: str | None = None, source: str = "auto") -> Backbone:
    """Read ``src`` in any layout the converter knows as one checked torchvision ResNet backbone (in memory).

    Steps: safe load (weights_only) -> detect layout -> key map (every key renamed or dropped by a named rule)
    -> float32 (:func:`as_float32_backbone`) -> CMC fold if needed -> exact check against torchvision's ResNet (no
    missing, extra or misshaped key). BatchNorm ``num_batches_tracked`` buffers absent from old files are filled as
    torchvision would (a note says so). Feature extraction (``mixbench.evaluate``) and every conversion target
    start from this.

    Raises:
        ConversionError: unknown layout, unmapped/missing/extra/misshaped keys, wrong arch; the message also names
            the layout assumed, the file's structure and what to do.
        mixbench.base.safe_load.CorruptCheckpointError: the file is damaged (CRC-32 mismatch, empty, broken zip).
        mixbench.base.safe_load.UnsafeCheckpointError: the file needs pickled code to load (nothing was run).
        FileNotFoundError, IsADirectoryError: ``src`` is not a file.
    """
    src = Path(src)
    if arch is not None and arch not in ARCH_DEPTHS:
        raise ConversionError(f"unknown arch {arch!r}; choose one of {list(ARCH_DEPTHS)}")
    obj = load_source(src)
    detected = detect(obj, src, source)
    try:
        return _read_detected(src, detected, arch)
    except ConversionError as err:  # say which layout was assumed and what the file looks like
        raise ConversionError(f"{err}\n{explain(obj, detected)}") from None


# The dtypes a ResNet backbone is stored in; all become float32, what torchvision's ResNet computes in.
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def as_float32_backbone(tensors: dict, where: str, notes: list[str]) -> dict[str, torch.Tensor]:
    """Refuse what no ResNet stores (non-tensors, integer/complex/bool weights, float counters); cast the floats
    to float32, with a note per source dtype; keep BatchNorm's ``num_batches_tracked`` int64.

    The targets load into float32 models anyway (``load_state_dict`` copies with a cast), so writing float32 says
    what the weights will be; a half-precision file is thus never passed on as if it were full precision.
    """
    out, cast = {}, {}
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"{where}: {key} is a {type(value).__name__}, not a tensor")
        if key.endswith("num_batches_tracked"):
            if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
                raise ConversionError(f"{where}: {key} is {value.dtype}; a BatchNorm counter is an integer")
            out[key] = value.long()
            continue
        if value.dtype not in FLOAT_DTYPES:
            raise ConversionError(
                f"{where}: {key} is {value.dtype}; ResNet weights are floating point "
                f"({', '.join(str(d).removeprefix('torch.') for d in FLOAT_DTYPES)})"
            )
        if value.dtype != torch.float32:
            cast[value.dtype] = cast.get(value.dtype, 0) + 1
        out[key] = value.float()
    for dtype, n in cast.items():
        notes.append(f"{n} tensors stored as {str(dtype).removeprefix('torch.')} were converted to float32")
    return out


def _read_detected(src: Path, detected: DetectedSource, arch: str | None) -> Backbone:
    mapped = apply_rules(detected.state_dict, detected.layout.rules, str(src))
    notes: list[str] = []
    verified = has_checksums(src)
    if not verified:
        notes.append("legacy (non-zip) torch file or one saved without CRC-32s: damage to it cannot be detected")

    color = None
    backbone = as_float32_backbone(mapped.tensors, str(src), notes)
    if detected.layout.name == "mixbench-cmc":
        color, note = cmc_fold.color_from_meta(detected.pretrain_meta)
        notes.append(note)
        pixel_mean, pixel_std = _pixel_stats(detected, color, notes)
        backbone = cmc_fold.fold_cmc(backbone, color, pixel_std)
        notes.append(
            f"CMC halves folded into one RGB ResNet; folded pixel mean {[round(v, 3) for v in pixel_mean]}"
        )
    else:
        pixel_mean, pixel_std = _pixel_stats(detected, None, notes)

    chosen = _choose_arch(src, detected, backbone, arch)
    if chosen in ARCH_DEPTHS:
        filled = fill_num_batches_tracked(backbone, chosen)
        if filled:
            notes.append(
                f"{len(filled)} BatchNorm num_batches_tracked buffers missing (a file saved before PyTorch 0.4.1, "
                "like torchvision's classic releases): filled with 0, what torchvision's BatchNorm keeps when it "
                "loads such a file; the counter only matters for BatchNorm(momentum=None), never in eval"
            )
    _check_backbone(backbone, chosen, str(src))

    previous = None
    if detected.convert_meta is not None:  # re-conversion of our own output: keep where it came from
        prev = detected.convert_meta
        previous = {"source_sha256": prev.source_sha256, "source_file": prev.source_file,
                    "source_layout": prev.source_layout}
    meta = ConvertMeta(
        source_sha256=sha256_file(src), source_file=src.name, source_layout=detected.layout.name, arch=chosen,
        depth=ARCH_DEPTHS[chosen], pixel_mean=pixel_mean, pixel_std=pixel_std, to_rgb=True,
        mixbench=detected.pretrain_meta, notes=list(notes), previous=previous,
    )
    return Backbone(
        src=src, source_layout=detected.layout.name, layout_reason=detected.reason, arch=chosen, tensors=backbone,
        pixel_mean=pixel_mean, pixel_std=pixel_std, meta=meta, rule_counts=dict(mapped.counts),
        mapping=mapped.log, notes=notes, verified=verified,
    )


def _choose_arch(src: Path, detected: DetectedSource, backbone: dict, arch: str | None) -> str:
    """``--arch``, else the checkpoint's metadata, else the keys; a given arch must agree with the keys."""
    metas = (detected.pretrain_meta, detected.convert_meta)
    meta_arch = next((m.arch for m in metas if m is not None and m.arch), None)
    looks = infer_arch(backbone)
    chosen = arch or meta_arch or looks
    if chosen is None:
        raise ConversionError(
            f"{src}: cannot tell the ResNet depth from the keys (pass --arch); first backbone keys: "
            f"{list(backbone)[:8]}"
        )
    if arch and looks and arch != looks:
        raise ConversionError(f"{src}: --arch {arch} given, but the checkpoint's keys are a {looks}")
    return chosen


def check_finite(bb: Backbone) -> None:
    """Refuse NaN/inf weights: a detector fine-tuned from them trains nothing useful.

    A file whose CRC-32s were verified holds the values its run saved, so NaN there means the run diverged; a
    legacy file has no checksums, so damage is possible too and the message says so.
    """
    bad = [k for k, v in bb.tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        why = ("the run that saved it diverged" if bb.verified else
               "the run that saved it diverged, or the file is damaged (it has no CRC-32s to tell)")
        raise ConversionError(f"{bb.src}: {len(bad)} tensors hold NaN or inf (e.g. {', '.join(bad[:3])}); {why}")


def _check_out(src: str | Path, out: str | Path, to: str) -> Path:
    """``out`` must name a new or existing file, other than ``src``; refused before anything is read."""
    example = f"{Path(src).stem}_{to}{'.pkl' if to == 'detectron2' else '.pth'}"
    if str(out).endswith((os.sep, "/")):
        raise ConversionError(f"{out}: ends in '/', so it names a folder; -o takes the output file's name "
                              f"(e.g. {Path(out) / example})")
    out = Path(out)
    if out.is_dir():
        raise ConversionError(f"{out}: is a directory; -o takes the output file's name (e.g. {out / example})")
    if out.resolve() == Path(src).resolve():
        raise ConversionError(f"{out}: the output path is the source file; converting in place would destroy it "
                              "(choose another -o)")
    return out


def convert_checkpoint(
    src: str | Path,
    out: str | Path,
    to: str = "mmdet",
    arch: str | None = None,
    source: str = "auto",
    verbose: bool = False,
) -> ConversionReport:
    """Convert ``src`` to ``to`` at ``out`` after checking every key (:func:`read_backbone`); returns what was done.

    Args:
        src: source checkpoint (read with ``weights_only=True`` only).
        out: output file (written atomically); a path ending in '/' or naming a directory is refused.
        to: 'torchvision' | 'mmdet' | 'detectron2'.
        arch: 'resnet18' ... 'resnet152'; None = from the checkpoint's metadata, else from its keys.
        source: layout name (``convert.catalog.LAYOUTS``, the CLI's ``--layout``) or 'auto'.
        verbose: kept for API symmetry with the CLI (the report always carries the full mapping).

    Raises:
        ConversionError: unknown layout, unmapped/missing/extra/misshaped keys, non-float weights, wrong arch, bad
            target, an output path that is a folder or the source.
        mixbench.base.safe_load.CorruptCheckpointError: the file is damaged (CRC-32 mismatch, empty, broken zip).
        mixbench.base.safe_load.UnsafeCheckpointError: the file needs pickled code to load (nothing was run).
        FileNotFoundError, IsADirectoryError: ``src`` is not a file.
        OSError: the output cannot be written (read-only, disk full); nothing is left at ``out``.
    """
    t0 = time.perf_counter()
    if to not in TARGETS:
        raise ConversionError(f"unknown target {to!r}; choose one of {list(TARGETS)}")
    out = _check_out(src, out, to)
    bb = read_backbone(src, arch, source)
    check_finite(bb)
    meta, settings = bb.meta, {}
    if to == "detectron2":  # weights alone do not say how detectron2 must run them: record it with them
        settings = detectron2_settings(bb.arch, bb.pixel_mean, bb.pixel_std)
        meta = dataclasses.replace(bb.meta, detectron2_cfg=settings)
    target = write_target(to, bb.tensors, out, meta.to_dict())
    return ConversionReport(
        src=bb.src,
        out_path=out,
        to=to,
        source_layout=bb.source_layout,
        layout_reason=bb.layout_reason,
        arch=bb.arch,
        n_tensors=len(bb.tensors),
        rule_counts=bb.rule_counts,
        mapping=bb.mapping,
        meta=meta,
        notes=bb.notes,
        target_mapping=target.log if target is not None else [],
        elapsed_s=time.perf_counter() - t0,
        target_settings=settings,
    )
