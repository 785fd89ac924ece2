"""The ``mixbench`` command: one entry point, one sub-command per stage action.

Sub-commands live in ``mixbench.commands`` (one module per stage); each imports its heavy modules only when its
command runs, so ``mixbench pretrain`` never imports mmdet/mmcv.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo_data(args: argparse.Namespace) -> int:
    from mixbench.synthetic import main as synthetic_main

    return synthetic_main(args)


def _doctor(args: argparse.Namespace) -> int:
    from mixbench.doctor import run_doctor

    return run_doctor()


def build_parser() -> argparse.ArgumentParser:
    from mixbench.commands import ablation, convert, evaluate, pretrain, show_mix, transfer

    parser = argparse.ArgumentParser(
        prog="mixbench",
        description="Image-mixture self-supervised pretraining (MoCo/CMC) and its transfer to VOC/COCO detection.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="check the torch/mmcv/mmdet stack and mmcv's compiled ops")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("demo-data", help="write deterministic synthetic ImageNet/VOC/COCO trees in the real layouts")
    p.add_argument("root", help="output folder (created); holds imagenet/, VOCdevkit/, coco/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=["tiny", "demo", "bench"], default="demo")
    p.set_defaults(func=_demo_data)

    for stage in (pretrain, evaluate, convert, transfer, show_mix, ablation):
        stage.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except OSError as err:  # a plain I/O failure (read-only, disk full, no permission) is the user's to fix
        from mixbench.base.io import os_error_message

        print(f"mixbench {args.command}: error: {os_error_message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
