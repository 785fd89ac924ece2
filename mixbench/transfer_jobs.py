"""Transfer runs as jobs: one ``mixbench transfer`` sub-command per run (config, checkpoint, seed) without a
finished record of its run key, for the pipeline's transfer stage and for ``mixbench transfer --executor``.

A run's key includes the processes it runs with and how they start (:func:`mixbench.transfer.runner.run_key`), so
the jobs of a 2-process executor are keyed, recorded and reused apart from 1-process runs of the same config. The key
is computed here as the job will compute it, on this machine's devices: the jobs must see the same kind of device
(CPU or CUDA) as the process that plans them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mixbench.base.config import parse_cfg_options
from mixbench.base.runkey import key_id
from mixbench.jobs import Job

if TYPE_CHECKING:
    from mixbench.transfer.checkpoint import Checkpoint

__all__ = ["LONGEST_FIRST", "TransferPlan", "plan_transfer_jobs"]

# Transfer jobs start longest first (by mmdet's config-name prefix), so the jobs left for the end are short ones
# and no core idles while one long job finishes.
LONGEST_FIRST = ("retinanet", "mask-rcnn", "cascade", "faster-rcnn")


@dataclass(frozen=True)
class TransferPlan:
    """What every transfer job of one stage shares: its folders, options and processes per job.

    Args:
        records_dir, work_root, cache_dir: ``mixbench transfer``'s ``--records-dir``, ``--work-root``, ``--cache-dir``.
        data_dir: ``--data-root`` (None: each config's own data root).
        options: ``--cfg-options`` pairs of every run.
        seeds_per_job: seeds of one (config, checkpoint) that one job runs one after another.
        world_size, launcher: processes per job and how they join a process group (the executor's), which the
            run's key depends on.
        flags: further arguments of every job (``--amp``).
    """

    records_dir: Path
    work_root: Path
    cache_dir: Path
    data_dir: str | Path | None = None
    options: list[str] = field(default_factory=list)
    seeds_per_job: int = 1
    world_size: int = 1
    launcher: str = "none"
    flags: list[str] = field(default_factory=list)


def plan_transfer_jobs(groups: list[tuple[str, Path, list[int]]], ckpts: list[Checkpoint], plan: TransferPlan,
                       force: bool, log: Callable[[str], None]) -> tuple[list[Job], list[Path]]:
    """The ``mixbench transfer`` jobs of the runs (config, checkpoint, seed) without a finished record of their run
    key, longest detectors first (listed order within one detector), and the record files of every run, done or
    not. ``groups`` lists (what, config, seeds): ``what`` (e.g. ``voc frozen``) goes into the job labels. A job runs
    up to ``seeds_per_job`` seeds of one config and checkpoint, one after another in one process (each seed still its
    own run and record): on a small machine the process start is a fair part of a short run."""
    jobs, records = [], []
    for what, config, seeds in groups:
        for ckpt in ckpts:
            todo: dict[int, str] = {}  # seed -> run key id, of the runs to do
            for seed in seeds:
                record, finished = _transfer_run(plan, Path(config), ckpt, seed, force, log)
                records.append(record)
                todo.update({} if finished else {seed: record.stem})
            n, left = plan.seeds_per_job, list(todo)
            jobs += [_transfer_job(plan, what, Path(config), ckpt, {s: todo[s] for s in left[i:i + n]}, force)
                     for i in range(0, len(left), n)]

    def cost_rank(job: Job) -> int:
        name = Path(job.argv[job.argv.index("--config") + 1]).name
        return next((i for i, p in enumerate(LONGEST_FIRST) if name.startswith(p)), len(LONGEST_FIRST))

    return sorted(jobs, key=cost_rank), records


def _transfer_run(plan: TransferPlan, config: Path, ckpt: Checkpoint, seed: int, force: bool,
                  log: Callable[[str], None]) -> tuple[Path, bool]:
    """The record file of one run, and whether it holds a finished run of this run key (reused, unless ``force``)."""
    from mixbench.transfer.config import build_config
    from mixbench.transfer.records import is_complete, record_path
    from mixbench.transfer.runner import run_key, work_dir_for

    # transfer_run_key's steps with the job's launcher: gloo processes on a CPU run a config of their own
    cfg = build_config(config, ckpt, work_dir_for(config, ckpt.name), data_dir=plan.data_dir,
                       cfg_options=parse_cfg_options(plan.options), world_size=plan.world_size, seed=seed,
                       launcher=plan.launcher)
    key = run_key(cfg, config, ckpt, seed, plan.world_size)
    record = record_path(plan.records_dir, config.stem, ckpt.name, key_id(key))
    if not force and is_complete(record, key):
        log(f"transfer {config.stem} / {ckpt.name} seed {seed}: finished record found; reused")
        return record, True
    return record, False


def _transfer_job(plan: TransferPlan, what: str, config: Path, ckpt: Checkpoint, runs: dict[int, str],
                  force: bool) -> Job:
    """One ``mixbench transfer`` job running the seeds of ``runs`` (seed -> run key id) of (config, checkpoint);
    its log sits in the first run's work dir (named by its seeds when it runs several)."""
    seeds = list(runs)
    name = config.stem
    argv = ["transfer", "random" if ckpt.is_random else f"{ckpt.name}={ckpt.path}",
            "--config", str(config), "--records-dir", str(plan.records_dir),
            "--work-root", str(plan.work_root), "--cache-dir", str(plan.cache_dir)]
    argv += ["--data-root", str(plan.data_dir)] if plan.data_dir is not None else []
    argv += ["--seed", str(seeds[0])] if len(seeds) == 1 else ["--seeds", *map(str, seeds)]
    argv += ["--force"] if force else []
    argv += plan.flags
    argv += ["--cfg-options", *plan.options] if plan.options else []
    tag = "" if len(seeds) == 1 else ".seeds-" + "-".join(map(str, seeds))
    log = plan.work_root / name / ckpt.name / runs[seeds[0]] / f"mixbench.transfer{tag}.log"
    seeds_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {' '.join(map(str, seeds))}"
    return Job(" ".join(w for w in ("transfer", what, name) if w) + f" / {ckpt.name} {seeds_text}", argv, log)
