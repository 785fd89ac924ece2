"""``mixbench pipeline [CONFIG]``: pretrain -> convert -> transfer (VOC, COCO) -> tables, resumable.

One pipeline config (``configs/pipeline/*.py``) names the pretraining configs to compare, the transfer suites
(configs per BN mode), the data and the output folders. Without a config the embedded demo runs
(``configs/pipeline/demo_synthetic.py``): synthetic data (generated if absent), ResNet-18 MoCo and MoCo+mixtures
pretrained for a few epochs, a random-init baseline, Faster R-CNN on VOC and RetinaNet + Mask R-CNN on COCO at
small scale, then the Table 7/8 layouts, all on CPU.

Resumable: each stage leaves a marker or a record; a second run skips what is finished (pretraining: a
``stage.json`` with the checkpoint's sha256 beside it; conversion: the sha256-keyed cache; transfer: run records),
and an interrupted stage resumes from its mmengine checkpoints. Reuse and resume are keyed by everything that
decides a result (issue 12): a pretraining run by the digest of its resolved config (``cfg_options`` included),
in ``WORK_DIR/pretrain/<name>/<key id>/``; a transfer run by ``mixbench.transfer.runner.run_key``. A changed
setting runs fresh beside the old work, never reuses it.

One pipeline at a time per ``work_dir`` (a lock; a killed pipeline's lock is detected as stale). Jobs run in
their own process groups and are stopped when the pipeline is interrupted (SIGINT/SIGTERM) or fails.

Pretraining and transfer runs are independent jobs, run as ``mixbench`` subprocesses (one log file each), up to
``parallel_jobs`` at a time with ``threads_per_job`` torch threads each. On a CPU-only machine two one-thread jobs
finish sooner than two-thread jobs one after the other: OpenMP's synchronisation costs more than it gains on
small detection steps (measured: VOC demo run 113 s with 1 thread, 75 s with 2, so 2 x 1 thread is ~1.3x faster).
With a GPU the default is one job at a time (each job takes the GPUs it is launched with).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixbench.base.config import config_digest, key_id, parse_cfg_options, resolve_config
from mixbench.base.io import atomic_write_json, atomic_write_text, sha256_file
from mixbench.base.procs import start_in_own_group, stop_children_on_exit
from mixbench.progress import ProgressBoard
from mixbench.transfer.suites import suite_configs

DEMO_CONFIG = "configs/pipeline/demo_synthetic.py"
REQUIRED_KEYS = ("pretrain", "suites", "bn_modes", "data_dir", "work_dir", "results_dir")
# Transfer jobs start longest first (by mmdet's config-name prefix), so the jobs left for the end are short ones
# and no core idles while one long job finishes (measured on the demo, 2 idle cores: RetinaNet ~98 s, Mask R-CNN
# ~90 s, Faster R-CNN ~77 s per run; the listed order once ended with a lone RetinaNet run).
LONGEST_FIRST = ("retinanet", "mask-rcnn", "cascade", "faster-rcnn")


class PipelineError(RuntimeError):
    """A pipeline stage failed or the pipeline config is wrong; the message names the stage and the file."""


def load_pipeline_config(path: str | Path | None) -> dict[str, Any]:
    from mmengine.config import Config

    try:
        path = resolve_config(path or DEMO_CONFIG)
    except FileNotFoundError as err:
        raise PipelineError(str(err)) from None
    cfg = Config.fromfile(str(path)).to_dict()
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise PipelineError(f"{path}: pipeline config lacks {missing}")
    try:
        cfg["_transfer_configs"] = {
            suite: {mode: suite_configs([suite], [mode], cfg.get("suite_scale", "paper")) for mode in cfg["bn_modes"]}
            for suite in cfg["suites"]
        }
        for entry in cfg["pretrain"]:
            entry["config"] = str(resolve_config(entry["config"]))
    except (FileNotFoundError, ValueError) as err:
        raise PipelineError(f"{path}: {err}") from None
    cfg["_path"] = str(path)
    return cfg


def _log(msg: str) -> None:
    print(f"[pipeline {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_data(cfg: dict[str, Any]) -> None:
    synthetic = cfg.get("synthetic")
    data_dir = Path(cfg["data_dir"])
    if not synthetic:
        if not data_dir.is_dir():
            raise PipelineError(f"data_dir {data_dir} does not exist")
        return
    from mixbench.synthetic import generate

    _log(f"data: synthetic preset {synthetic['preset']!r} seed {synthetic.get('seed', 0)} in {data_dir}")
    generate(data_dir, seed=synthetic.get("seed", 0), preset=synthetic["preset"])


def last_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine's ``last_checkpoint`` marker in ``work_dir`` names, if it still exists."""
    marker = work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    p = Path(marker.read_text().strip())
    p = p if p.is_absolute() else Path.cwd() / p
    return p if p.is_file() else None


@dataclass
class Job:
    """One ``mixbench`` sub-command run in its own process, its output in ``log``."""

    label: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0


def parallel_settings(cfg: dict[str, Any]) -> tuple[int, int]:
    """(jobs at a time, torch threads per job) from the config; 'auto' = one job per core on CPU, 1 with a GPU."""
    import torch

    threads = int(cfg.get("threads_per_job", 1))
    jobs = cfg.get("parallel_jobs", 1)
    if jobs == "auto":
        jobs = 1 if torch.cuda.is_available() else max(1, (os.cpu_count() or 1) // threads)
    return int(jobs), threads


def run_jobs(jobs: list[Job], parallel: int, threads: int, board: ProgressBoard | None = None) -> None:
    """Run ``jobs`` with at most ``parallel`` at a time; raise PipelineError naming every failed job and its log.

    While they run, ``board`` (default: a :class:`mixbench.progress.ProgressBoard` on stdout) shows one line per
    running job with its stage, epoch/iteration and ETA, read from the job's mmengine log.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    board = board or ProgressBoard()
    pending, running, failed = list(jobs), [], []

    def log(msg: str) -> None:
        board.clear()
        _log(msg)

    with stop_children_on_exit(lambda: [j.proc for j in running], log=log):
        _run_job_loop(pending, running, failed, parallel, env, board, log)
    board.clear()
    if failed:
        raise PipelineError("failed: " + "; ".join(f"{j.label} (log {j.log})" for j in failed))


def _run_job_loop(pending: list[Job], running: list[Job], failed: list[Job], parallel: int, env: dict[str, str],
                  board: ProgressBoard, log) -> None:
    """The scheduling loop of :func:`run_jobs` (its caller stops the running jobs if this raises)."""
    done = 0
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            job.log.parent.mkdir(parents=True, exist_ok=True)
            with open(job.log, "ab") as fh:  # own process group: stopped with the pipeline, never orphaned
                job.proc = start_in_own_group([sys.executable, "-m", "mixbench.cli", *job.argv], stdout=fh,
                                              stderr=subprocess.STDOUT, env=env)
            job.started = time.time()
            log(f"{job.label}: started (log {job.log})")
            running.append(job)
        time.sleep(0.5)
        for job in [j for j in running if j.proc.poll() is not None]:
            running.remove(job)
            seconds = time.time() - job.started
            if job.proc.returncode == 0:
                done += 1
                log(f"{job.label}: done in {seconds:.0f} s")
            else:
                tail = job.log.read_text(errors="replace").splitlines()[-15:]
                log(f"{job.label}: FAILED (exit {job.proc.returncode}) after {seconds:.0f} s; end of {job.log}:")
                print("\n".join("    " + line for line in tail), flush=True)
                failed.append(job)
        if running:
            board.update([(j.label, j.log, j.started) for j in running], done, len(failed), len(pending))


def pretrain_key(entry: dict[str, Any]) -> dict[str, Any]:
    """What decides a pretraining result: the resolved config's digest (``cfg_options`` applied), its data root and
    seed, one process (the pipeline launches none)."""
    from mixbench.pretrain.train import build_config

    options = parse_cfg_options([f"{k}={v}" for k, v in entry.get("cfg_options", {}).items()])
    cfg = build_config(entry["config"], work_dir="unused", cfg_options=options)
    return {"config": Path(entry["config"]).stem, "config_sha256": config_digest(cfg),
            "data_root": os.path.abspath(cfg.train_dataloader.dataset.root),
            "seed": cfg.get("randomness", {}).get("seed"), "world_size": 1}


def finished_pretraining(stage: Path, key: dict[str, Any] | None) -> Path | None:
    """The checkpoint a finished run left (its bytes unchanged since), else None.

    ``stage`` is the run's ``stage.json``; with ``key``, only a run of that same key counts (``None``: the caller's
    work dir is already per key, e.g. the ablation's).
    """
    import json

    if not stage.is_file():
        return None
    done = json.loads(stage.read_text())
    if key is not None and done.get("run_key") != key:
        return None
    ckpt = Path(done["checkpoint"])
    return ckpt if ckpt.is_file() and sha256_file(ckpt) == done["sha256"] else None


def pretrain_stage(cfg: dict[str, Any], force: bool, parallel: int, threads: int) -> list[Path]:
    """Run every pretraining config (``mixbench pretrain``, resumed if interrupted); return the final checkpoints.

    Each run's work dir is ``WORK_DIR/pretrain/<name>/<key id>``: a changed config or ``cfg_options`` (e.g.
    ``max_epochs`` 5 -> 7) trains fresh instead of reusing or resuming the old run.
    """
    keys = [pretrain_key(entry) for entry in cfg["pretrain"]]
    work_dirs = [Path(cfg["work_dir"]) / "pretrain" / entry["name"] / key_id(key)
                 for entry, key in zip(cfg["pretrain"], keys)]
    reused: dict[str, Path] = {}
    jobs = []
    for entry, key, work_dir in zip(cfg["pretrain"], keys, work_dirs):
        if not force and (ckpt := finished_pretraining(work_dir / "stage.json", key)):
            _log(f"pretrain {entry['name']}: finished ({ckpt}); reused")
            reused[entry["name"]] = ckpt
            continue
        argv = ["pretrain", entry["config"], "--work-dir", str(work_dir)]
        if (work_dir / "last_checkpoint").is_file() and not force:
            argv.append("--resume")
        options = [f"{k}={v}" for k, v in entry.get("cfg_options", {}).items()]
        if options:
            argv += ["--cfg-options", *options]
        work_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(work_dir / "run_key.json", key)
        jobs.append(Job(f"pretrain {entry['name']}", argv, work_dir / "mixbench.pretrain.log"))
    run_jobs(jobs, parallel, threads)

    ckpts = []
    for entry, key, work_dir in zip(cfg["pretrain"], keys, work_dirs):
        ckpt = reused.get(entry["name"]) or last_checkpoint(work_dir)
        if ckpt is None:
            raise PipelineError(f"pretraining {entry['name']} ({entry['config']}) left no checkpoint in {work_dir}")
        if entry["name"] not in reused:  # just trained: mark the stage finished
            atomic_write_json(work_dir / "stage.json",
                              {"checkpoint": str(ckpt), "sha256": sha256_file(ckpt), "run_key": key})
        ckpts.append(ckpt)
    return ckpts


def run_pipeline(config: str | Path | None = None, force: bool = False) -> dict[str, Any]:
    """Run every stage of a pipeline config; return {'records': [...], 'tables': {format: path}, 'seconds'}."""
    from mixbench.base.locks import WorkDirLockedError, work_dir_lock

    cfg = load_pipeline_config(config)
    try:
        with work_dir_lock(cfg["work_dir"], log=_log):
            return _run_stages(cfg, force)
    except WorkDirLockedError as err:
        raise PipelineError(str(err)) from None


def _run_stages(cfg: dict[str, Any], force: bool) -> dict[str, Any]:
    from mixbench.transfer.records import collect_records, is_complete, record_path
    from mixbench.transfer.runner import Checkpoint, TransferError, prepare_checkpoint, transfer_run_key
    from mixbench.transfer.tables import build_blocks, render

    t0 = time.time()
    parallel, threads = parallel_settings(cfg)
    _log(f"config {cfg['_path']}; up to {parallel} job(s) at a time, {threads} torch thread(s) each")
    ensure_data(cfg)

    ckpts = [Checkpoint(name="random", path=None)] if cfg.get("random_init", True) else []
    for entry, path in zip(cfg["pretrain"], pretrain_stage(cfg, force, parallel, threads)):
        ckpts.append(Checkpoint(name=entry["name"], path=path))

    work = Path(cfg["work_dir"])
    for ckpt in ckpts:
        if not ckpt.is_random:
            try:
                prepare_checkpoint(ckpt, work / "converted")
            except (TransferError, ValueError, RuntimeError) as err:
                raise PipelineError(f"convert {ckpt.name}: {err}") from err
            _log(f"convert {ckpt.name}: {ckpt.path} -> {ckpt.converted}")

    results = Path(cfg["results_dir"])
    records_dir = results / "records"
    options = [f"{k}={v}" for k, v in (cfg.get("transfer_cfg_options") or {}).items()]
    jobs = []
    for suite, modes in cfg["_transfer_configs"].items():
        for mode in cfg["bn_modes"]:
            for config_path in modes[mode]:
                name = Path(config_path).stem
                for ckpt in ckpts:
                    key = transfer_run_key(config_path, ckpt, data_dir=cfg["data_dir"],
                                           cfg_options=parse_cfg_options(options), seed=cfg.get("seed", 0))
                    if not force and is_complete(record_path(records_dir, name, ckpt.name), key):
                        _log(f"transfer {name} / {ckpt.name}: finished record found; reused")
                        continue
                    argv = ["transfer", "random" if ckpt.is_random else f"{ckpt.name}={ckpt.path}",
                            "--config", str(config_path), "--records-dir", str(records_dir),
                            "--work-root", str(work / "transfer"), "--cache-dir", str(work / "converted"),
                            "--data-root", str(cfg["data_dir"]), "--seed", str(cfg.get("seed", 0))]
                    argv += ["--force"] if force else []
                    argv += ["--cfg-options", *options] if options else []
                    log = work / "transfer" / name / ckpt.name / "mixbench.transfer.log"
                    jobs.append(Job(f"transfer {suite} {mode} {name} / {ckpt.name}", argv, log))
    def cost_rank(job: Job) -> int:
        name = job.argv[job.argv.index("--config") + 1].rsplit("/", 1)[-1]
        return next((i for i, p in enumerate(LONGEST_FIRST) if name.startswith(p)), len(LONGEST_FIRST))

    run_jobs(sorted(jobs, key=cost_rank), parallel, threads)  # stable: listed order within a detector

    records = [rec for _, rec in collect_records([records_dir])]
    blocks = build_blocks(records, paper=bool(cfg.get("paper_rows", False)))
    tables = {}
    for fmt, ext in (("markdown", "md"), ("csv", "csv"), ("latex", "tex")):
        text = render(blocks, fmt)
        if fmt == "markdown":
            text = (f"<!-- generated by `mixbench pipeline {cfg['_path']}` from {records_dir}; "
                    "do not edit -->\n\n" + text)
        tables[fmt] = atomic_write_text(results / f"tables.{ext}", text)
    seconds = time.time() - t0
    print(render(blocks, "markdown"))
    _log(f"tables written to {results}/tables.{{md,csv,tex}}; total {seconds:.0f} s")
    return {"records": records, "tables": tables, "seconds": seconds}
