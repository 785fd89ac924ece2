"""Sub-commands of the transfer stage: ``transfer``, ``table`` and ``pipeline`` (registered by mixbench.cli).

mmdet, mmcv and mmengine's Runner are imported inside the callables only, so ``mixbench --help`` stays light.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixbench.base import launch
from mixbench.base.config import add_cfg_options
from mixbench.base.precision import AMP_HELP
from mixbench.transfer import suites


def _configs_for(args: argparse.Namespace) -> list[Path]:
    from mixbench.base.config import resolve_config

    if args.config:
        return [resolve_config(c) for c in args.config]
    names = list(suites.SUITES["paper"]) if args.suite == "all" else [args.suite]
    modes = list(suites.BN_MODES) if args.bn == "both" else [args.bn]
    return suites.suite_configs(names, modes)


def _transfer(args: argparse.Namespace) -> int:
    from mixbench.base.hooks import NonFiniteLossError
    from mixbench.base.launch import init_launcher
    from mixbench.base.locks import WorkDirError
    from mixbench.transfer.checkpoint import TransferError, parse_checkpoint, prepare_checkpoint
    from mixbench.transfer.ops_backend import OpsBackendError
    from mixbench.transfer.runner import run_transfer

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
        seeds = list(dict.fromkeys(args.seeds or [args.seed]))  # each seed is its own run, with its own record
        for config in _configs_for(args):
            for seed, ckpt in [(s, c) for s in seeds for c in ckpts]:
                run_transfer(config, ckpt, records_dir=args.records_dir, work_root=args.work_root,
                             data_dir=args.data_root, cfg_options=cfg_options, force=args.force, seed=seed,
                             launcher=args.launcher, world_size=world_size, amp=args.amp)
    except (TransferError, OpsBackendError, FileNotFoundError, ValueError, WorkDirError,
            NonFiniteLossError) as err:
        print(f"mixbench transfer: error: {err}", file=sys.stderr)
        return 2
    return 0


def _table(args: argparse.Namespace) -> int:
    from mixbench.base.io import atomic_write_text
    from mixbench.transfer.plot import write_plot
    from mixbench.transfer.records import collect_records
    from mixbench.transfer.tables import build_blocks, render

    def fail(message: str) -> int:
        print(f"mixbench table: error: {message}", file=sys.stderr)
        return 2

    try:
        found = collect_records(args.paths or ["results/records"], strict=args.strict)
    except (FileNotFoundError, ValueError) as err:
        return fail(f"{err}" + (" (without --strict such files are skipped and named)" if args.strict else ""))
    for path, why in found.skipped:
        print(f"mixbench table: skipped {path}: {why}", file=sys.stderr)
    if not found.records and not args.paper:
        return fail("no run records found" + (f" ({len(found.skipped)} file(s) skipped)" if found.skipped else ""))
    try:
        blocks = build_blocks(found.records, paper=args.paper, baseline=args.baseline)
    except ValueError as err:
        return fail(str(err))
    names = sorted({r.name for b in blocks for r in b["measured"]})
    if args.baseline is not None and args.baseline not in names:
        return fail(f"--baseline {args.baseline!r}: no measured row of that name (rows: {', '.join(names)})")
    text = render(blocks, args.format, skipped=found.skipped)
    try:
        if args.out:
            atomic_write_text(args.out, text)
        if args.plot:
            write_plot(blocks, args.plot)
    except (OSError, ValueError) as err:
        return fail(str(err))
    print(text)
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from mixbench.pipeline import PipelineError, run_pipeline

    try:
        run_pipeline(args.config, force=args.force)
    except PipelineError as err:
        print(f"mixbench pipeline: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # SIGINT/SIGTERM: running jobs stopped, partial files removed
        why = str(err) or "received SIGINT"
        print(f"mixbench pipeline: interrupted ({why}); running jobs stopped, rerun to resume", file=sys.stderr)
        return 130
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transfer", help="fine-tune + evaluate checkpoints on VOC/COCO detection (mmdet) -> run records",
                       description="Convert each checkpoint (cached by sha256), fine-tune it with mmdet's Runner "
                       "and write one run record per (checkpoint, config). Finished runs are skipped, interrupted "
                       "ones resume.")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="a checkpoint in any layout `mixbench convert` reads, NAME=FILE, or 'random' (random init)")
    p.add_argument("--suite", choices=[*suites.SUITES["paper"], "all"], default="all")  # at suite_configs' scale
    p.add_argument("--bn", choices=[*suites.BN_MODES, "both"], default="both", help="backbone BN mode")
    p.add_argument("--config", nargs="+", help="explicit transfer configs (instead of --suite/--bn)")
    p.add_argument("--data-root", help="folder holding VOCdevkit/ and coco/ (default: each config's data_root)")
    p.add_argument("--launcher", choices=launch.LAUNCHERS, default="none")
    add_cfg_options(p)
    p.add_argument("--records-dir", default="results/records")
    p.add_argument("--work-root", default="work_dirs/transfer",
                   help="work dirs: WORK_ROOT/<config>/<checkpoint>/<run key id>")
    p.add_argument("--cache-dir", help="converted checkpoints, keyed by sha256 (default WORK_ROOT/_converted)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0)
    seeds.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                       help="run each seed as its own run (own run key, work dir and record); tables show mean ± s.d.")
    p.add_argument("--force", action="store_true", help="rerun finished runs from scratch")
    p.add_argument("--amp", action="store_true", help=AMP_HELP)
    p.set_defaults(func=_transfer)

    p = sub.add_parser("table", help="Tables 7/8 layouts from run records (markdown, csv, latex), mean ± s.d. "
                       "over seeds")
    p.add_argument("paths", nargs="*", help="record files or folders (default results/records)")
    p.add_argument("--format", choices=["markdown", "csv", "latex"], default="markdown")
    p.add_argument("--paper", action="store_true", help="add the paper's published rows (marked 'paper')")
    p.add_argument("--out", help="also write the table to this file")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first file that is not a valid run record (default: skip it and name it)")
    p.add_argument("--baseline", metavar="NAME",
                   help="a row's pre-train name (e.g. random, moco): every other row gets its paired difference "
                   "to it over the seeds both share, with a 95%% t-interval")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw the measured rows: one panel per detector and metric, bars = mean, dots = seeds")
    p.set_defaults(func=_table)

    p = sub.add_parser("pipeline", help="pretrain -> convert -> transfer -> tables, from one pipeline config",
                       description="Without CONFIG: the CPU demo on synthetic data "
                       "(configs/pipeline/demo_synthetic.py). A second run reuses finished stages.")
    p.add_argument("config", nargs="?", help="pipeline config (configs/pipeline/*.py)")
    p.add_argument("--force", action="store_true", help="rerun every stage")
    p.set_defaults(func=_pipeline)
