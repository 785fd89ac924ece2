"""Sub-commands of the transfer stage: ``transfer``, ``table`` and ``pipeline`` (registered by mixbench.cli).

mmdet, mmcv and mmengine's Runner are imported inside the callables only, so ``mixbench --help`` stays light.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixbench.base.precision import AMP_HELP


def _configs_for(args: argparse.Namespace) -> list[Path]:
    from mixbench.base.config import resolve_config
    from mixbench.transfer.suites import suite_configs

    if args.config:
        return [resolve_config(c) for c in args.config]
    suites = ["voc", "coco"] if args.suite == "all" else [args.suite]
    modes = ["frozen", "finetune"] if args.bn == "both" else [args.bn]
    return suite_configs(suites, modes)


def _transfer(args: argparse.Namespace) -> int:
    from mixbench.base.hooks import NonFiniteLossError
    from mixbench.base.locks import WorkDirLockedError
    from mixbench.transfer.ops_backend import OpsBackendError
    from mixbench.transfer.runner import (
        TransferError,
        init_launcher,
        parse_checkpoint,
        prepare_checkpoint,
        run_transfer,
    )

    try:
        from mixbench.base.config import parse_cfg_options

        cfg_options = parse_cfg_options(args.cfg_options)
        ckpts = [parse_checkpoint(spec) for spec in args.checkpoints]
        names = [c.name for c in ckpts]
        if len(set(names)) != len(names):
            raise ValueError(f"checkpoint names must differ (they key work dirs and records): {names}; "
                             "use NAME=FILE")
        world_size = init_launcher(args.launcher)
        cache = args.cache_dir or Path(args.work_root) / "_converted"
        for ckpt in ckpts:
            prepare_checkpoint(ckpt, cache)
        for config in _configs_for(args):
            for ckpt in ckpts:
                run_transfer(config, ckpt, records_dir=args.records_dir, work_root=args.work_root,
                             data_dir=args.data_root, cfg_options=cfg_options, force=args.force, seed=args.seed,
                             launcher=args.launcher, world_size=world_size, amp=args.amp)
    except (TransferError, OpsBackendError, FileNotFoundError, ValueError, WorkDirLockedError,
            NonFiniteLossError) as err:
        print(f"mixbench transfer: error: {err}", file=sys.stderr)
        return 2
    return 0


def _table(args: argparse.Namespace) -> int:
    from mixbench.base.io import atomic_write_text
    from mixbench.transfer.records import collect_records
    from mixbench.transfer.tables import build_blocks, render

    try:
        records = [rec for _, rec in collect_records(args.paths or ["results/records"])]
    except (FileNotFoundError, ValueError) as err:
        print(f"mixbench table: error: {err}", file=sys.stderr)
        return 2
    if not records and not args.paper:
        print("mixbench table: error: no run records found", file=sys.stderr)
        return 2
    text = render(build_blocks(records, paper=args.paper), args.format)
    if args.out:
        atomic_write_text(args.out, text)
    print(text)
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from mixbench.base.procs import Interrupted
    from mixbench.pipeline import PipelineError, run_pipeline

    try:
        run_pipeline(args.config, force=args.force)
    except PipelineError as err:
        print(f"mixbench pipeline: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as err:  # its running jobs were stopped; a rerun resumes them
        print(f"mixbench pipeline: interrupted ({err}); running jobs stopped, rerun to resume", file=sys.stderr)
        return 130
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="fine-tune + evaluate checkpoints on VOC/COCO detection (mmdet) -> run records",
                       description="Convert each checkpoint (cached by sha256), fine-tune it with mmdet's Runner "
                       "and write one run record per (checkpoint, config). Finished runs are skipped, interrupted "
                       "ones resume.")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="a checkpoint in any layout `mixbench convert` reads, NAME=FILE, or 'random' (random init)")
    p.add_argument("--suite", choices=["voc", "coco", "all"], default="all")
    p.add_argument("--bn", choices=["frozen", "finetune", "both"], default="both", help="backbone BN mode")
    p.add_argument("--config", nargs="+", help="explicit transfer configs (instead of --suite/--bn)")
    p.add_argument("--data-root", help="folder holding VOCdevkit/ and coco/ (default: each config's data_root)")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    p.add_argument("--cfg-options", nargs="+", metavar="KEY=VALUE", help="override config settings")
    p.add_argument("--records-dir", default="results/records")
    p.add_argument("--work-root", default="work_dirs/transfer",
                   help="work dirs: WORK_ROOT/<config>/<checkpoint>/<run key id>")
    p.add_argument("--cache-dir", help="converted checkpoints, keyed by sha256 (default WORK_ROOT/_converted)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rerun finished runs from scratch")
    p.add_argument("--amp", action="store_true", help=AMP_HELP)
    p.set_defaults(func=_transfer)

    p = sub.add_parser("table", help="Tables 7/8 layouts from run records (markdown, csv, latex)")
    p.add_argument("paths", nargs="*", help="record files or folders (default results/records)")
    p.add_argument("--format", choices=["markdown", "csv", "latex"], default="markdown")
    p.add_argument("--paper", action="store_true", help="add the paper's published rows (marked 'paper')")
    p.add_argument("--out", help="also write the table to this file")
    p.set_defaults(func=_table)

    p = sub.add_parser("pipeline", help="pretrain -> convert -> transfer -> tables, from one pipeline config",
                       description="Without CONFIG: the CPU demo on synthetic data "
                       "(configs/pipeline/demo_synthetic.py). A second run reuses finished stages.")
    p.add_argument("config", nargs="?", help="pipeline config (configs/pipeline/*.py)")
    p.add_argument("--force", action="store_true", help="rerun every stage")
    p.set_defaults(func=_pipeline)
