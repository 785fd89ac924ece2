"""``mixbench pipeline [CONFIG]``: pretrain -> convert -> transfer (VOC, COCO) -> tables, resumable.

One pipeline config (``configs/pipeline/*.py``) names the pretraining configs to compare, the transfer suites
(configs per BN mode), the seeds, the data and the output folders. Without a config the embedded demo runs
(``configs/pipeline/demo_synthetic.py``): synthetic data (generated if absent), ResNet-18 MoCo and MoCo+mixtures
pretrained for a few epochs, a random-init baseline, Faster R-CNN on VOC and RetinaNet + Mask R-CNN on COCO at
small scale, then the Table 7/8 layouts, all on CPU.

Resumable: each stage leaves a marker or a record; a second run skips what is finished (pretraining: a
``stage.json`` with the checkpoint's sha256 beside it; conversion: the sha256-keyed cache; transfer: run records),
and an interrupted stage resumes from its mmengine checkpoints. Reuse and resume are keyed by everything that
decides a result: a pretraining run by its run key, in ``WORK_DIR/pretrain/<name>/<key id>/``; a transfer run
(one per seed) by ``mixbench.transfer.runner.transfer_run_key``. A changed setting runs fresh beside the earlier
work, never reuses it.

One pipeline at a time per ``work_dir`` (a lock; a killed pipeline's lock is detected as stale). Pretraining and
transfer runs are jobs (:mod:`mixbench.jobs`) that end with the pipeline; a rerun first stops any that a killed
pipeline left. SIGINT or SIGTERM at any point stops the running jobs and ends the run with nothing half-written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixbench.base.config import ConfigOptionError, parse_cfg_options, resolve_config
from mixbench.base.io import atomic_write_json, atomic_write_text, sha256_file
from mixbench.base.procs import raise_on_signals
from mixbench.base.runkey import key_id
from mixbench.jobs import (
    Job,
    JobError,
    LocalExecutor,
    finished_pretraining,
    last_checkpoint,
    parallel_settings,
    run_jobs,
)
from mixbench.transfer.suites import suite_configs

if TYPE_CHECKING:
    from mixbench.transfer.checkpoint import Checkpoint

DEMO_CONFIG = "configs/pipeline/demo_synthetic.py"
REQUIRED_KEYS = ("pretrain", "suites", "bn_modes", "data_dir", "work_dir", "results_dir")
# Transfer jobs start longest first (by mmdet's config-name prefix), so the jobs left for the end are short ones
# and no core idles while one long job finishes.
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
    cfg["seeds"] = _seeds(cfg, path)
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


def _seeds(cfg: dict[str, Any], path: Path) -> list[int]:
    """The transfer seeds: ``seeds``, else ``[seed]``, else ``[0]``."""
    if "seeds" in cfg and "seed" in cfg:
        raise PipelineError(f"{path}: give `seeds` (a list) or `seed`, not both")
    seeds = cfg.get("seeds", [cfg.get("seed", 0)])
    if (not isinstance(seeds, (list, tuple)) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise PipelineError(f"{path}: seeds must be a non-empty list of distinct integers, not {seeds!r}")
    return list(seeds)


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


def pretrain_key(entry: dict[str, Any]) -> dict[str, Any]:
    """What decides a pretraining result: the resolved config's digest (``cfg_options`` applied), its data root and
    seed, one process (the pipeline launches none)."""
    from mixbench.pretrain.train import build_config, pretrain_run_key

    options = parse_cfg_options([f"{k}={v}" for k, v in entry.get("cfg_options", {}).items()])
    return pretrain_run_key(build_config(entry["config"], work_dir="unused", cfg_options=options), entry["config"])


def pretrain_stage(cfg: dict[str, Any], force: bool, run: Callable[[list[Job]], None]) -> list[Path]:
    """Run every pretraining config (``mixbench pretrain``, resumed if interrupted); return the final checkpoints.

    Each run's work dir is ``WORK_DIR/pretrain/<name>/<key id>``: a changed config or ``cfg_options`` (e.g.
    ``max_epochs`` 5 -> 7) trains fresh instead of reusing or resuming the other run.
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
    run(jobs)

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


def convert_stage(cfg: dict[str, Any], ckpts: list[Checkpoint]) -> None:
    """Convert each pretrained checkpoint once (cached by sha256 under ``WORK_DIR/converted``)."""
    from mixbench.transfer.checkpoint import TransferError, prepare_checkpoint

    for ckpt in ckpts:
        if ckpt.is_random:
            continue
        try:
            prepare_checkpoint(ckpt, Path(cfg["work_dir"]) / "converted")
        except (TransferError, ValueError, RuntimeError) as err:
            raise PipelineError(f"convert {ckpt.name}: {err}") from err
        _log(f"convert {ckpt.name}: {ckpt.path} -> {ckpt.converted}")


def transfer_jobs(cfg: dict[str, Any], ckpts: list[Checkpoint], force: bool) -> tuple[list[Job], list[Path]]:
    """One ``mixbench transfer`` job per (config, checkpoint, seed) without a finished record of its run key,
    longest detectors first (listed order within one detector), and the record files of every run, done or not."""
    jobs, records = [], []
    for suite, modes in cfg["_transfer_configs"].items():
        for mode in cfg["bn_modes"]:
            for config_path in modes[mode]:
                for ckpt in ckpts:
                    for seed in cfg["seeds"]:
                        record, job = _transfer_job(cfg, f"{suite} {mode}", Path(config_path), ckpt, seed, force)
                        records.append(record)
                        jobs += [job] if job else []

    def cost_rank(job: Job) -> int:
        name = Path(job.argv[job.argv.index("--config") + 1]).name
        return next((i for i, p in enumerate(LONGEST_FIRST) if name.startswith(p)), len(LONGEST_FIRST))

    return sorted(jobs, key=cost_rank), records


def _transfer_job(cfg: dict[str, Any], what: str, config: Path, ckpt: Checkpoint, seed: int, force: bool
                  ) -> tuple[Path, Job | None]:
    from mixbench.transfer.records import is_complete, record_path
    from mixbench.transfer.runner import transfer_run_key

    work, records_dir, name = Path(cfg["work_dir"]), Path(cfg["results_dir"]) / "records", config.stem
    options = [f"{k}={v}" for k, v in (cfg.get("transfer_cfg_options") or {}).items()]
    key = transfer_run_key(config, ckpt, data_dir=cfg["data_dir"], cfg_options=parse_cfg_options(options),
                           seed=seed)
    record = record_path(records_dir, name, ckpt.name, key_id(key))
    if not force and is_complete(record, key):
        _log(f"transfer {name} / {ckpt.name} seed {seed}: finished record found; reused")
        return record, None
    argv = ["transfer", "random" if ckpt.is_random else f"{ckpt.name}={ckpt.path}",
            "--config", str(config), "--records-dir", str(records_dir),
            "--work-root", str(work / "transfer"), "--cache-dir", str(work / "converted"),
            "--data-root", str(cfg["data_dir"]), "--seed", str(seed)]
    argv += ["--force"] if force else []
    argv += ["--cfg-options", *options] if options else []
    log = work / "transfer" / name / ckpt.name / key_id(key) / "mixbench.transfer.log"  # beside the run's work dir
    return record, Job(f"transfer {what} {name} / {ckpt.name} seed {seed}", argv, log)


def measured_on(records: list[dict[str, Any]]) -> str:
    """Where and when the records were measured, from the records themselves: dates and machines (CPU, cores,
    GPUs), so a table regenerated elsewhere still says where its numbers came from."""
    days = sorted({str(r.get("finished", ""))[:10] for r in records} - {""})
    machines = set()
    for r in records:
        hw = r.get("hardware") or {}
        gpus = ", ".join(hw.get("gpus") or []) or "no GPU"
        machines.add(f"{hw.get('machine', '?')} {hw.get('processor') or ''} {hw.get('cpu_count', '?')} cores, {gpus}"
                     .replace("  ", " "))
    when = (days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}") if days else "an unknown date"
    return f"measured {when} on {'; '.join(sorted(machines)) or 'an unknown machine'}"


def table_stage(cfg: dict[str, Any], runs: list[Path]) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Tables (markdown, csv, latex) and the plot of this pipeline's runs (their record files ``runs``), stating
    when and where they were measured; returns (records, files). Records of other run keys in the same folder
    (an earlier setting) stay on disk and out of these tables."""
    from mixbench.transfer.plot import write_plot
    from mixbench.transfer.records import collect_records
    from mixbench.transfer.tables import build_blocks, render

    results = Path(cfg["results_dir"])
    found = collect_records([p for p in runs if p.is_file()])
    blocks = build_blocks(found.records, paper=bool(cfg.get("paper_rows", False)), baseline=cfg.get("baseline"))
    source = f"generated by `mixbench pipeline {cfg['_path']}` from {results / 'records'}; do not edit"
    when = measured_on(found.records)
    files = {}
    for fmt, ext in (("markdown", "md"), ("csv", "csv"), ("latex", "tex")):
        text = render(blocks, fmt, skipped=found.skipped)
        if fmt == "markdown":
            text = f"<!-- {source} -->\n\n{when[0].upper()}{when[1:]}.\n\n{text}"
        elif fmt == "latex":
            text = f"% {source}\n% {when}\n{text}"
        files[fmt] = atomic_write_text(results / f"tables.{ext}", text)
    if blocks:
        files["plot"] = write_plot(blocks, results / "transfer.png")
    print(render(blocks, "markdown", skipped=found.skipped))
    return found.records, files


def run_pipeline(config: str | Path | None = None, force: bool = False) -> dict[str, Any]:
    """Run every stage of a pipeline config; return {'records': [...], 'tables': {format: path}, 'seconds'}.

    SIGINT and SIGTERM raise :class:`mixbench.base.procs.Interrupted` wherever they arrive (hashing, converting,
    waiting on jobs), after the running jobs are stopped and any partial file is removed.
    """
    from mixbench.base.locks import WorkDirError, work_dir_lock

    with raise_on_signals():
        cfg = load_pipeline_config(config)
        try:
            with work_dir_lock(cfg["work_dir"], log=_log):
                return _run_stages(cfg, force)
        except WorkDirError as err:
            raise PipelineError(str(err)) from None
        except ConfigOptionError as err:  # a cfg_options key of the pipeline config that its stage config lacks
            raise PipelineError(f"{cfg['_path']}: {err}") from None
        except OSError as err:  # a full or read-only disk under one of the pipeline's own folders
            raise PipelineError(f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
                                ) from None


def _run_stages(cfg: dict[str, Any], force: bool) -> dict[str, Any]:
    from mixbench.transfer.checkpoint import Checkpoint

    t0 = time.time()
    parallel, threads = parallel_settings(cfg)
    executor = LocalExecutor(state_dir=cfg["work_dir"])
    executor.stop_leftovers(_log)  # the lock is ours: any job still listed belongs to a pipeline that died
    _log(f"config {cfg['_path']}; up to {parallel} job(s) at a time, {threads} torch thread(s) each")
    ensure_data(cfg)

    def run(jobs: list[Job]) -> None:
        try:
            run_jobs(jobs, parallel, threads, executor=executor, log=_log)
        except JobError as err:
            raise PipelineError(str(err)) from None

    ckpts = [Checkpoint(name="random", path=None)] if cfg.get("random_init", True) else []
    ckpts += [Checkpoint(name=entry["name"], path=path)
              for entry, path in zip(cfg["pretrain"], pretrain_stage(cfg, force, run))]
    convert_stage(cfg, ckpts)
    jobs, runs = transfer_jobs(cfg, ckpts, force)
    run(jobs)
    records, tables = table_stage(cfg, runs)
    seconds = time.time() - t0
    _log(f"tables written to {cfg['results_dir']}/tables.{{md,csv,tex}} and transfer.png; total {seconds:.0f} s")
    return {"records": records, "tables": tables, "seconds": seconds}
