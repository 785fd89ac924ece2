"""Sub-commands of the transfer stage: ``transfer``, ``table`` and ``pipeline`` (registered by mixbench.cli).

mmdet, mmcv and mmengine's Runner are imported inside the callables only, so ``mixbench --help`` stays light.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from mixbench.base import launch
from mixbench.base.config import add_cfg_options
from mixbench.base.precision import AMP_HELP
from mixbench.executors import EXECUTORS
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
        if args.executor:
            return _transfer_jobs(args, ckpts)
        for flag, given in (("--slurm", args.slurm), ("--gpus-per-job", args.gpus_per_job),
                            ("--parallel", args.parallel)):
            if given:
                raise ValueError(f"{flag} needs --executor (without it the runs go one after another in this "
                                 "process)")
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


def _transfer_jobs(args: argparse.Namespace, ckpts: list) -> int:
    """``transfer --executor``: each run without a finished record becomes one job of its own (a ``mixbench
    transfer`` of exactly that run), run by the executor; the checkpoints are converted here, once."""
    from mixbench.executors import build_executor, check_device_kind, jobs_at_once, parse_slurm_options
    from mixbench.jobs import JobError, run_jobs
    from mixbench.transfer.checkpoint import prepare_checkpoint
    from mixbench.transfer_jobs import TransferPlan, plan_transfer_jobs

    kind = args.executor
    if args.launcher != "none":
        raise ValueError(f"--launcher {args.launcher}: with --executor the executor starts each run's processes; "
                         "leave --launcher out")
    if args.slurm and kind != "slurm":
        raise ValueError(f"--slurm sets Slurm resources; it needs --executor slurm, not {kind}")
    if args.gpus_per_job is not None and kind != "torchrun":
        raise ValueError(f"--gpus-per-job is torchrun's; with --executor {kind} give "
                         + ("--slurm tasks_per_node=N gpus_per_task=1" if kind == "slurm" else "--executor torchrun"))
    executor = build_executor(kind, {"gpus_per_job": args.gpus_per_job or 1, "slurm": parse_slurm_options(args.slurm)},
                              "transfer")
    check_device_kind(kind, executor)
    cache = Path(args.cache_dir or Path(args.work_root) / "_converted")
    for ckpt in ckpts:
        prepare_checkpoint(ckpt, cache)
    plan = TransferPlan(records_dir=Path(args.records_dir), work_root=Path(args.work_root), cache_dir=cache,
                        data_dir=args.data_root, options=list(args.cfg_options), world_size=executor.world_size,
                        launcher=executor.launcher, flags=["--amp"] if args.amp else [])
    seeds = list(dict.fromkeys(args.seeds or [args.seed]))
    jobs, _ = plan_transfer_jobs([("", config, seeds) for config in _configs_for(args)], ckpts, plan, args.force,
                                 lambda msg: print(msg, flush=True))
    parallel, threads = jobs_at_once(kind, {"parallel_jobs": args.parallel or "auto"}, executor, len(jobs))
    try:
        run_jobs(jobs, parallel, threads, executor=executor)
    except JobError as err:
        print(f"mixbench transfer: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # SIGINT/SIGTERM: local jobs stopped, Slurm jobs left running (named above)
        left = "its Slurm jobs go on; the same command run again follows them" if kind == "slurm" else \
            "running jobs stopped, rerun to resume"
        print(f"mixbench transfer: interrupted ({err or 'received SIGINT'}); {left}", file=sys.stderr)
        return 130
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
    from mixbench.base.procs import raise_on_signals
    from mixbench.pipeline import PipelineError, cancel_pipeline, load_pipeline_config, pipeline_jobs, run_pipeline

    cfg: dict = {}
    try:
        with raise_on_signals():
            cfg = load_pipeline_config(args.config, args.cfg_options, args.executor)
            if args.status:
                return _print_jobs(pipeline_jobs(cfg), cfg["work_dir"])
            if args.cancel:
                ended = cancel_pipeline(cfg)
                print(f"ended {len(ended)} job(s) of {cfg['work_dir']}" + (": " + ", ".join(ended) if ended else ""))
                return 0
            run_pipeline(cfg, force=args.force)
    except PipelineError as err:
        print(f"mixbench pipeline: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # SIGINT/SIGTERM: local jobs stopped, Slurm jobs left, partial files removed
        why = str(err) or "received SIGINT"
        if cfg.get("executor") == "slurm":
            # the same work dir: the config, and any --cfg-options that moves its work dir
            moved = [p for p in args.cfg_options if p.lstrip("+").partition("=")[0] == "work_dir"]
            again = shlex.join(["mixbench", "pipeline", *([args.config] if args.config else []),
                                *(["--cfg-options", *moved] if moved else [])])
            print(f"mixbench pipeline: interrupted ({why}); its Slurm jobs go on: `{again} --status` lists them, "
                  f"`{again} --cancel` cancels them, a rerun follows them", file=sys.stderr)
        else:
            print(f"mixbench pipeline: interrupted ({why}); running jobs stopped, rerun to resume", file=sys.stderr)
        return 130
    return 0


def _print_jobs(rows: list[dict[str, str]], work_dir: str) -> int:
    from tabulate import tabulate

    if not rows:
        print(f"no jobs recorded under {work_dir}")
        return 0
    header = {"label": "job", "executor": "executor", "job_id": "id", "state": "state", "reason": "reason",
              "log": "log"}
    print(tabulate([{k: row.get(k, "") for k in header} for row in rows], headers=header))
    return 0


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return n


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
    p.add_argument("--executor", choices=EXECUTORS,
                   help="run each (config, checkpoint, seed) without a finished record as a job of its own: local "
                   "processes, torchrun (--gpus-per-job) or Slurm (--slurm); default: one after another here")
    p.add_argument("--slurm", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="Slurm resources of each job (with --executor slurm): nodes, tasks_per_node, gpus_per_task, "
                   "cpus_per_task, mem_gb, timeout_min, partition, account, qos, constraint, sbatch.OPTION, "
                   "signal_delay_s, max_requeues")
    p.add_argument("--gpus-per-job", type=_positive, metavar="N",
                   help="processes (GPUs) per job (with --executor torchrun)")
    p.add_argument("--parallel", type=_positive, metavar="N",
                   help="jobs at a time (default: Slurm all, torchrun one per GPU slice, else one per CPU core, or "
                   "one with a GPU)")
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
    p.add_argument("--executor", choices=EXECUTORS,
                   help="where jobs run (default: the config's `executor`, else local): this machine's processes, "
                   "torchrun with the config's gpus_per_job, or Slurm with its `slurm` resources")
    actions = p.add_mutually_exclusive_group()
    actions.add_argument("--status", action="store_true",
                         help="list the jobs recorded under the work dir (Slurm: id, state, reason, log) and exit")
    actions.add_argument("--cancel", action="store_true",
                         help="cancel the queued and running Slurm jobs recorded under the work dir, stop the local "
                         "jobs a dead pipeline left, and exit")
    add_cfg_options(p, "Here the keys are the pipeline config's; pretrain.N.cfg_options.KEY=VALUE and "
                    "transfer_cfg_options.KEY=VALUE set a stage's own option.")
    p.set_defaults(func=_pipeline)
