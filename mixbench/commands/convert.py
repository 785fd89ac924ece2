"""``mixbench convert SRC -o OUT --to torchvision|mmdet|detectron2 [--arch A] [--source S] [--verbose]``."""

from __future__ import annotations

import argparse
import sys
import time

from mixbench.base.resnets import ARCHS

# Kept in sync with convert.sources.LAYOUTS (not imported: registering the CLI must not import torch);
# tests/convert checks they agree.
SOURCE_CHOICES = (
    "auto",
    "mixbench-mmdet",
    "mixbench-moco",
    "mixbench-cmc",
    "moco-public",
    "mmselfsup",
    "torchvision",
    "cmc-official",
)
TARGET_CHOICES = ("torchvision", "mmdet", "detectron2")
ARCH_CHOICES = tuple(ARCHS)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``convert`` sub-command."""
    p = sub.add_parser(
        "convert",
        help="convert a MoCo/CMC/mmselfsup/torchvision ResNet checkpoint to torchvision, mmdet or detectron2",
        description="Every source key is renamed or dropped by a named rule; the result must match "
        "torchvision's ResNet exactly (no missing, extra or misshaped tensor). "
        "Files are read with weights_only=True only.",
    )
    p.add_argument("src", metavar="SRC", help="source checkpoint")
    p.add_argument("-o", "--out", required=True, help="output file (detectron2: must end in .pkl)")
    p.add_argument("--to", required=True, choices=TARGET_CHOICES)
    p.add_argument(
        "--arch",
        choices=ARCH_CHOICES,
        default=None,
        help="ResNet depth; default: from the checkpoint's metadata, else from its keys",
    )
    p.add_argument("--source", choices=SOURCE_CHOICES, default="auto", help="source layout (default: detect)")
    p.add_argument("--verbose", action="store_true", help="print every 'old -> new' and the elapsed time")
    p.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    from mixbench.base.safe_load import UnsafeCheckpointError
    from mixbench.convert.api import convert_checkpoint
    from mixbench.convert.errors import ConversionError

    try:
        report = convert_checkpoint(
            args.src, args.out, to=args.to, arch=args.arch, source=args.source, verbose=args.verbose
        )
    except (ConversionError, UnsafeCheckpointError, FileNotFoundError, ValueError) as err:
        print(f"mixbench convert: error: {err}", file=sys.stderr)
        return 2
    print(f"source layout: {report.source_layout} ({report.layout_reason})")
    print(f"arch: {report.arch}; {report.n_tensors} backbone tensors -> {report.to}: {report.out_path}")
    print("mapping summary (source keys per rule):")
    for rule, n in report.rule_counts.items():
        print(f"  {rule:28s} {n:5d}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"pixel mean/std (RGB, 0-255): {report.meta['pixel_mean']} / {report.meta['pixel_std']}")
    if args.verbose:
        for old, new, rule in report.mapping:
            print(f"  {old} -> {new if new is not None else f'(dropped: {rule})'}")
        for old, new, _ in report.target_mapping:
            print(f"  [{report.to}] {old} -> {new}")
        total = time.perf_counter() - t0
        print(f"elapsed: {report.elapsed_s:.3f} s (conversion), {total:.3f} s with torch/torchvision imports")
    return 0
