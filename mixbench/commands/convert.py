"""``mixbench convert SRC -o OUT --to torchvision|mmdet|detectron2 [--arch A] [--layout L] [--verbose]``;
``mixbench convert --list-layouts`` prints the releases it reads."""

from __future__ import annotations

import argparse
import sys
import time

from mixbench.base.resnets import ARCHS
from mixbench.convert.catalog import LAYOUTS, layout_table

# From the layout catalog (torch-free, so building the parser does not import torch).
SOURCE_CHOICES = ("auto", *LAYOUTS)
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
    p.add_argument("src", metavar="SRC", nargs="?", help="source checkpoint")
    p.add_argument("-o", "--out", help="output file (detectron2: must end in .pkl); required with SRC")
    p.add_argument("--to", choices=TARGET_CHOICES, help="target format; required with SRC")
    p.add_argument(
        "--arch",
        choices=ARCH_CHOICES,
        default=None,
        help="ResNet depth; default: from the checkpoint's metadata, else from its keys",
    )
    p.add_argument(
        "--layout",
        "--source",
        dest="source",
        choices=SOURCE_CHOICES,
        default="auto",
        help="source layout (default: detect from the keys); see --list-layouts",
    )
    p.add_argument(
        "--list-layouts", action="store_true", help="print the releases read, their layout and encoder, and exit"
    )
    p.add_argument("--verbose", action="store_true", help="print every 'old -> new' and the elapsed time")
    p.set_defaults(func=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    if args.list_layouts:
        print(layout_table())
        return 0
    if args.src is None or args.out is None or args.to is None:
        print("mixbench convert: error: SRC, -o/--out and --to are required (or --list-layouts)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    from mixbench.base.io import os_error_message
    from mixbench.base.safe_load import UnsafeCheckpointError
    from mixbench.convert.api import convert_checkpoint

    try:
        report = convert_checkpoint(
            args.src, args.out, to=args.to, arch=args.arch, source=args.source, verbose=args.verbose
        )
    except (UnsafeCheckpointError, ValueError) as err:  # ValueError: ConversionError, CorruptCheckpointError
        print(f"mixbench convert: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # missing source, read-only or full output disk: nothing was written
        print(f"mixbench convert: error: {os_error_message(err)}", file=sys.stderr)
        return 2
    print(f"source layout: {report.source_layout} ({report.layout_reason})")
    print(f"arch: {report.arch}; {report.n_tensors} backbone tensors -> {report.to}: {report.out_path}")
    print("mapping summary (source keys per rule):")
    for rule, n in report.rule_counts.items():
        print(f"  {rule:28s} {n:5d}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"pixel mean/std (RGB, 0-255): {report.meta.pixel_mean} / {report.meta.pixel_std}")
    if report.target_settings:
        print(f"{report.to} settings these weights need (also in the file's meta['mixbench_convert']):")
        for key, value in report.target_settings.items():
            print(f"  {key} {value}")
    if args.verbose:
        for old, new, rule in report.mapping:
            print(f"  {old} -> {new if new is not None else f'(dropped: {rule})'}")
        for old, new, _ in report.target_mapping:
            print(f"  [{report.to}] {old} -> {new}")
        total = time.perf_counter() - t0
        print(f"elapsed: {report.elapsed_s:.3f} s (conversion), {total:.3f} s with torch/torchvision imports")
    return 0
