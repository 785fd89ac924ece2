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
transfer runs are jobs (:mod:`mixbench.jobs`) run by the config's ``executor`` (:mod:`mixbench.executors`):
``local`` and ``torchrun`` jobs are process groups that end with the pipeline, and a rerun first stops any that a
killed pipeline left; ``slurm`` jobs outlive it, and a rerun follows those still queued or running. SIGINT or
SIGTERM at any point stops the running local jobs (leaves Slurm jobs running) and ends the run with nothing
half-written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixbench.base.config import ConfigOptionError, merge_cfg_options, parse_cfg_options, resolve_config
from mixbench.base.io import atomic_write_json, atomic_write_text, sha256_file
from mixbench.base.procs import raise_on_signals
from mixbench.base.runkey import key_id
from mixbench.executors import EXECUTORS, build_executor, check_device_kind, jobs_at_once
from mixbench.jobs import Job, JobError, LocalExecutor, finished_pretraining, last_checkpoint, run_jobs
from mixbench.transfer.suites import DETECTORS, suite_configs
from mixbench.transfer_jobs import TransferPlan, plan_transfer_jobs

if TYPE_CHECKING:
    from mixbench.transfer.checkpoint import Checkpoint

DEMO_CONFIG = "configs/pipeline/demo_synthetic.py"
REQUIRED_KEYS = ("pretrain", "suites", "bn_modes", "data_dir", "work_dir", "results_dir")
# A --cfg-options key into a stage's own cfg_options: what follows `cfg_options.` is one key of that dict, checked
# against the stage's config when the stage runs (the pipeline config cannot know the stage config's keys).
STAGE_OPTION = re.compile(r"\+?(?:pretrain\.(?P<index>\d+)\.cfg_options|transfer_cfg_options)\.(?P<key>.+)")


class PipelineError(RuntimeError):
    """A pipeline stage failed or the pipeline config is wrong; the message names the stage and the file."""


def load_pipeline_config(path: str | Path | None, cfg_options: Sequence[str] | None = None,
                         executor: str | None = None) -> dict[str, Any]:
    """The pipeline config at ``path`` (None: the demo), checked, with ``cfg_options`` (``KEY=VALUE`` overrides of
    its keys, see :func:`apply_cfg_options`) applied and ``executor`` (when given) in place of its ``executor``."""
    from mmengine.config import Config

    try:
        path = resolve_config(path or DEMO_CONFIG)
    except FileNotFoundError as err:
        raise PipelineError(str(err)) from None
    config = Config.fromfile(str(path))
    try:
        cfg = apply_cfg_options(config, cfg_options)
    except ConfigOptionError as err:
        raise PipelineError(f"{path}: {err}") from None
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise PipelineError(f"{path}: pipeline config lacks {missing}")
    cfg["executor"] = executor or cfg.get("executor", "local")
    if cfg["executor"] not in EXECUTORS:
        raise PipelineError(f"{path}: executor {cfg['executor']!r} is not one of {', '.join(EXECUTORS)}")
    cfg["seeds"] = _seeds(cfg, path)
    cfg["seeds_per_job"] = _seeds_per_job(cfg, path)
    try:
        cfg["_transfer_configs"] = {
            suite: {mode: suite_configs([suite], [mode], cfg.get("suite_scale", "paper"), cfg.get("detectors"))
                    for mode in cfg["bn_modes"]}
            for suite in cfg["suites"]
        }
        for entry in cfg["pretrain"]:
            entry["config"] = str(resolve_config(entry["config"]))
    except (FileNotFoundError, ValueError) as err:
        raise PipelineError(f"{path}: {err}") from None
    cfg["_path"] = str(path)
    return cfg


def _seeds(cfg: dict[str, Any], path: Path) -> dict[str, list[int]]:
    """The transfer seeds of each suite: ``seeds`` (one list for every suite, or a dict suite -> list), else
    ``[seed]``, else ``[0]``."""
    if "seeds" in cfg and "seed" in cfg:
        raise PipelineError(f"{path}: give `seeds` (a list) or `seed`, not both")
    seeds = cfg.get("seeds", [cfg.get("seed", 0)])
    if isinstance(seeds, dict):
        unknown = sorted(set(seeds) - set(cfg["suites"]))
        missing = [s for s in cfg["suites"] if s not in seeds]
        if unknown or missing:
            wrong = (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else "")
            raise PipelineError(f"{path}: seeds per suite must name exactly the suites {cfg['suites']}{wrong}")
        return {suite: _seed_list(seeds[suite], path, f"seeds[{suite!r}]") for suite in cfg["suites"]}
    seeds = _seed_list(seeds, path, "seeds")
    return {suite: seeds for suite in cfg["suites"]}


def _seed_list(seeds: Any, path: Path, what: str) -> list[int]:
    if (not isinstance(seeds, (list, tuple)) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise PipelineError(f"{path}: {what} must be a non-empty list of distinct integers, not {seeds!r}")
    return list(seeds)


def _seeds_per_job(cfg: dict[str, Any], path: Path) -> int:
    n = cfg.get("seeds_per_job", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PipelineError(f"{path}: seeds_per_job must be a positive integer, not {n!r}")
    return n


def apply_cfg_options(config: Any, pairs: Sequence[str] | None) -> dict[str, Any]:
    """Apply ``--cfg-options`` pairs to a pipeline ``config`` (an mmengine ``Config``); return it as a dict.

    Keys of the pipeline config are checked as every command checks them (a new key is ``+KEY``; list items by
    index: ``pretrain.0.name=x``). ``pretrain.N.cfg_options.KEY=VALUE`` and ``transfer_cfg_options.KEY=VALUE`` set
    KEY of that stage's own ``cfg_options`` (added or replaced; the stage's config checks KEY when it is built), its
    VALUE kept as written, since the stage reads it as its own ``--cfg-options``.

    Raises:
        ConfigOptionError: a malformed pair, an unknown key, an index past the end of ``pretrain``.
    """
    parse_cfg_options(pairs)  # every pair well-formed
    stage, plain = {}, []
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        if STAGE_OPTION.fullmatch(key):
            stage[key] = value
        else:
            plain.append(pair)
    merge_cfg_options(config, parse_cfg_options(plain))
    cfg = config.to_dict()
    for key, value in stage.items():
        match = STAGE_OPTION.fullmatch(key)
        if match["index"] is None:
            owner, name = cfg, "transfer_cfg_options"
        else:
            entries, i = cfg.get("pretrain") or [], int(match["index"])
            if i >= len(entries):
                raise ConfigOptionError(f"--cfg-options {key}: pretrain is a list of {len(entries)} items; "
                                        f"{str(i)!r} is not an index of it (0 to {len(entries) - 1})")
            owner, name = entries[i], "cfg_options"
        owner[name] = {**(owner.get(name) or {}), match["key"]: value}
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


def pretrain_key(entry: dict[str, Any], world_size: int = 1) -> dict[str, Any]:
    """What decides a pretraining result: the resolved config's digest (``cfg_options`` applied), its data root and
    seed, and the number of processes of the job (the batch per process is the config's)."""
    from mixbench.pretrain.train import build_config, pretrain_run_key

    options = parse_cfg_options([f"{k}={v}" for k, v in (entry.get("cfg_options") or {}).items()])
    key = pretrain_run_key(build_config(entry["config"], work_dir="unused", cfg_options=options), entry["config"])
    return {**key, "world_size": world_size}


def pretrain_stage(cfg: dict[str, Any], force: bool, run: Callable[[list[Job]], None], world_size: int = 1
                   ) -> list[Path]:
    """Run every pretraining config (``mixbench pretrain``, resumed if interrupted) as jobs of ``world_size``
    processes; return the final checkpoints.

    Each run's work dir is ``WORK_DIR/pretrain/<name>/<key id>``: a changed config or ``cfg_options`` (e.g.
    ``max_epochs`` 5 -> 7) or number of processes trains fresh instead of reusing or resuming the other run.
    """
    keys = [pretrain_key(entry, world_size) for entry in cfg["pretrain"]]
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
        options = [f"{k}={v}" for k, v in (entry.get("cfg_options") or {}).items()]
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


def transfer_jobs(cfg: dict[str, Any], ckpts: list[Checkpoint], force: bool, executor: Any = None
                  ) -> tuple[list[Job], list[Path]]:
    """The transfer stage's jobs (:func:`mixbench.transfer_jobs.plan_transfer_jobs`) for ``executor`` (default:
    local): every (suite, BN mode, config) with each suite's seeds, in the pipeline's folders; and the record files
    of every run."""
    work = Path(cfg["work_dir"])
    groups = [(f"{suite} {mode}", Path(config), cfg["seeds"][suite])
              for suite, modes in cfg["_transfer_configs"].items()
              for mode in cfg["bn_modes"] for config in modes[mode]]
    plan = TransferPlan(records_dir=Path(cfg["results_dir"]) / "records", work_root=work / "transfer",
                        cache_dir=work / "converted", data_dir=cfg["data_dir"],
                        options=[f"{k}={v}" for k, v in (cfg.get("transfer_cfg_options") or {}).items()],
                        seeds_per_job=cfg["seeds_per_job"], world_size=getattr(executor, "world_size", 1),
                        launcher=getattr(executor, "launcher", "none"))
    return plan_transfer_jobs(groups, ckpts, plan, force, _log)


def measured_on(records: list[dict[str, Any]]) -> str:
    """Where and when the records were measured, from the records themselves: dates and machines (CPU, cores,
    GPUs), so a table regenerated elsewhere still says where its numbers came from."""
    days = sorted({str(r.get("finished", ""))[:10] for r in records} - {""})
    machines = set()
    for r in records:
        hw = r.get("hardware") or {}
        gpus = ", ".join(hw.get("gpus") or []) or "no GPU"
        kernels = f", torch CPU kernels {hw['cpu_kernels']}" if hw.get("cpu_kernels") else ""
        kernels += f", oneDNN capped at {hw['onednn_max_cpu_isa']}" if hw.get("onednn_max_cpu_isa") else ""
        machines.add(f"{hw.get('machine', '?')} {hw.get('processor') or ''} {hw.get('cpu_count', '?')} cores, {gpus}"
                     f"{kernels}".replace("  ", " "))
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


def run_pipeline(config: str | Path | dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Run every stage of a pipeline config (a path, or a config :func:`load_pipeline_config` returned); return
    {'records': [...], 'tables': {format: path}, 'seconds'}.

    SIGINT and SIGTERM raise :class:`mixbench.base.procs.Interrupted` wherever they arrive (hashing, converting,
    waiting on jobs), after the running local jobs are stopped (Slurm jobs are left running) and any partial file is
    removed.
    """
    from mixbench.base.locks import WorkDirError, work_dir_lock

    with raise_on_signals():
        cfg = config if isinstance(config, dict) else load_pipeline_config(config)
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


def _executors(cfg: dict[str, Any]) -> dict[str, Any]:
    """One executor per stage (``slurm``: the stage's own resources), built before any stage runs so that a wrong
    setting stops the pipeline at once."""
    try:
        executors = {stage: build_executor(cfg["executor"], cfg, stage, state_dir=cfg["work_dir"])
                     for stage in ("pretrain", "transfer")}
        check_device_kind(cfg["executor"], executors["transfer"])  # pretraining keys are computed here only
        return executors
    except ValueError as err:
        raise PipelineError(f"{cfg['_path']}: {err}") from None


def _run_stages(cfg: dict[str, Any], force: bool) -> dict[str, Any]:
    from mixbench.transfer.checkpoint import Checkpoint

    t0 = time.time()
    executors = _executors(cfg)
    LocalExecutor(state_dir=cfg["work_dir"]).stop_leftovers(_log)  # the lock is ours: listed jobs' pipeline died
    _log(f"config {cfg['_path']}; executor {cfg['executor']}")
    if cfg.get("detectors") is not None:
        left = [d for d in DETECTORS if d not in cfg["detectors"]]
        if left:
            _log(f"transfer runs {', '.join(cfg['detectors'])}; left out by `detectors` in {cfg['_path']}: "
                 f"{', '.join(left)} (the config says why)")
    ensure_data(cfg)

    def run(stage: str, jobs: list[Job]) -> None:
        executor = executors[stage]
        parallel, threads = jobs_at_once(cfg["executor"], cfg, executor, len(jobs))
        if jobs:
            _log(f"{stage}: {len(jobs)} job(s), up to {parallel} at a time, {executor.world_size} process(es) and "
                 f"{threads} torch thread(s) each")
        try:
            run_jobs(jobs, parallel, threads, executor=executor, log=_log)
        except JobError as err:
            raise PipelineError(f"{stage} {err}") from None

    ckpts = [Checkpoint(name="random", path=None)] if cfg.get("random_init", True) else []
    pretrained = pretrain_stage(cfg, force, lambda jobs: run("pretrain", jobs), executors["pretrain"].world_size)
    ckpts += [Checkpoint(name=entry["name"], path=path) for entry, path in zip(cfg["pretrain"], pretrained)]
    convert_stage(cfg, ckpts)
    jobs, runs = transfer_jobs(cfg, ckpts, force, executors["transfer"])
    run("transfer", jobs)
    records, tables = table_stage(cfg, runs)
    seconds = time.time() - t0
    _log(f"tables written to {cfg['results_dir']}/tables.{{md,csv,tex}} and transfer.png; total {seconds:.0f} s")
    return {"records": records, "tables": tables, "seconds": seconds}


def pipeline_jobs(cfg: dict[str, Any]) -> list[dict[str, str]]:
    """One row per job recorded under the pipeline's work dir (Slurm jobs and this machine's process groups)."""
    from mixbench.executors import job_rows

    return job_rows(cfg["work_dir"]) if Path(cfg["work_dir"]).is_dir() else []


def cancel_pipeline(cfg: dict[str, Any]) -> list[str]:
    """End every job recorded under the pipeline's work dir: ``scancel`` its queued and running Slurm jobs, and stop
    the process groups a dead pipeline left (under the work dir's lock: a live pipeline's own jobs end with it);
    returns what was ended."""
    from mixbench.base.locks import WorkDirError, work_dir_lock
    from mixbench.executors.slurm import SlurmExecutor

    work = Path(cfg["work_dir"])
    if not work.is_dir():
        return []
    ended = [f"Slurm job {i}" for i in SlurmExecutor(log=_log).cancel_all(work)]
    local = LocalExecutor(state_dir=work)
    if local.status():
        try:
            with work_dir_lock(work, log=_log):
                ended += local.stop_leftovers(_log)
        except WorkDirError as err:
            raise PipelineError(f"{err}; the jobs it lists in {work / 'jobs.json'} end with it (Ctrl-C)") from None
    return ended
