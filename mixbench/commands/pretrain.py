"""``mixbench pretrain CONFIG [--work-dir D] [--cfg-options k=v ...] [--launcher L] [--resume] [--amp]
[--channels-last]``."""

from __future__ import annotations

import argparse

from mixbench.base import launch
from mixbench.base.config import add_cfg_options
from mixbench.base.precision import AMP_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="pretraining config, e.g. configs/pretrain/moco_r18_synthetic.py")
    parser.add_argument("--work-dir", help="default: work_dirs/pretrain/<config name>")
    add_cfg_options(parser)
    parser.add_argument("--launcher", choices=launch.LAUNCHERS, default="none")
    parser.add_argument("--resume", action="store_true", help="continue from work_dir/last_checkpoint")
    parser.add_argument("--amp", action="store_true", help=AMP_HELP)
    parser.add_argument("--channels-last", action="store_true", help="NHWC memory layout for the encoders")
    # torchrun < 2.0 passes --local_rank; accept and ignore it (LOCAL_RANK is in the environment).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import sys

    from mixbench.base.config import parse_cfg_options, resolve_config
    from mixbench.base.hooks import NonFiniteLossError
    from mixbench.base.locks import WorkDirError
    from mixbench.pretrain.train import train

    try:
        work_dir = train(
            resolve_config(args.config),
            work_dir=args.work_dir,
            cfg_options=parse_cfg_options(args.cfg_options),
            launcher=args.launcher,
            resume=args.resume,
            amp=args.amp,
            channels_last=args.channels_last,
        )
    # Errors whose message names the file and the problem; anything else is a bug and keeps its traceback.
    except (FileNotFoundError, NotADirectoryError, ValueError, NonFiniteLossError, WorkDirError) as err:
        print(f"mixbench pretrain: error: {err}", file=sys.stderr)
        return 2
    print(f"work_dir: {work_dir}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("pretrain", help="MoCo/CMC pretraining with image mixtures (mmengine Runner)")
    add_arguments(parser)
    parser.set_defaults(func=run)
