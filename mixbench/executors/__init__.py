"""Where a pipeline's jobs run: :class:`mixbench.jobs.LocalExecutor` (this machine's processes, the default),
:class:`~mixbench.executors.torchrun.TorchrunExecutor` (one multi-GPU node) and
:class:`~mixbench.executors.slurm.SlurmExecutor` (a Slurm cluster, through submitit).

The executor modules are imported on use, so ``mixbench`` needs submitit only for Slurm. The jobs a run leaves
are found from its work dir alone (:func:`job_rows`): Slurm job records beside each job's log, and ``jobs.json`` for
this machine's process groups.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["EXECUTORS", "STAGES", "build_executor", "check_device_kind", "job_rows", "jobs_at_once",
           "parse_slurm_options", "stage_resources"]

EXECUTORS = ("local", "torchrun", "slurm")
STAGES = ("pretrain", "transfer", "evaluate")  # keys of the `slurm` dict that hold one stage's own resources


def stage_resources(slurm: dict[str, Any] | None, stage: str) -> dict[str, Any]:
    """The Slurm resources of ``stage``: the shared keys of the config's ``slurm`` dict, then the stage's own.

    >>> stage_resources(dict(partition='gpu', timeout_min=60, pretrain=dict(timeout_min=4320)), 'pretrain')
    {'partition': 'gpu', 'timeout_min': 4320}
    """
    slurm = dict(slurm or {})
    shared = {k: v for k, v in slurm.items() if k not in STAGES}
    return {**shared, **(slurm.get(stage) or {})}


def build_executor(kind: str, cfg: dict[str, Any], stage: str, state_dir: str | Path | None = None) -> Any:
    """The executor ``kind`` for the jobs of ``stage``, from a pipeline config's ``gpus_per_job`` (torchrun) or
    ``slurm`` (resources, with per-stage overrides) keys."""
    if kind == "local":
        from mixbench.jobs import LocalExecutor

        return LocalExecutor(state_dir=state_dir)
    if kind == "torchrun":
        from mixbench.executors.torchrun import TorchrunExecutor

        n = cfg.get("gpus_per_job", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"gpus_per_job must be a positive integer, not {n!r}")
        return TorchrunExecutor(nproc_per_job=n, state_dir=state_dir)
    if kind == "slurm":
        from mixbench.executors.slurm import SlurmExecutor

        return SlurmExecutor(stage_resources(cfg.get("slurm"), stage))
    raise ValueError(f"executor: unknown {kind!r}; use one of {', '.join(EXECUTORS)}")


def check_device_kind(kind: str, executor: Any) -> None:
    """Raise ValueError when ``executor``'s jobs would run on another kind of device (GPU or CPU) than this process.

    A transfer run's key, which names its work dir and record, is computed by the process that plans the jobs, and
    the resolved config it digests depends on the device kind (cuDNN, SyncBN, gloo settings). A job on the other
    kind would compute another key and write its record elsewhere: the planning run would neither find it for the
    tables nor reuse it. Local and torchrun jobs run here; a Slurm job asks for GPUs through ``gpus_per_task`` or
    an ``sbatch`` GPU option (``gres``, ``gpus*``).
    """
    if kind != "slurm":
        return
    import torch

    extra = executor.resources.get("sbatch") or {}
    asked = [f"gpus_per_task={executor.resources['gpus_per_task']}"] if executor.resources.get("gpus_per_task") else []
    asked += [f"sbatch.{k}={v}" for k, v in extra.items()
              if "gpu" in str(k).lower() or (str(k) == "gres" and "gpu" in str(v).lower())]
    here = torch.cuda.is_available()
    if bool(asked) != here:
        jobs = f"the Slurm jobs ask for GPUs ({', '.join(asked)})" if asked else "the Slurm jobs ask for no GPU"
        raise ValueError(f"{jobs} but this machine {'has' if here else 'has no'} GPU: run keys (work dirs, records) "
                         "are computed here for the device kind the jobs see, so start this command where the jobs' "
                         "kind of device is visible (e.g. in an `srun --gpus-per-task=1 --pty bash` shell); the jobs "
                         "still run on the cluster")


def jobs_at_once(kind: str, cfg: dict[str, Any], executor: Any, n_jobs: int) -> tuple[int, int]:
    """(jobs at a time, torch threads per process) for ``n_jobs`` jobs of a stage on ``executor``.

    ``parallel_jobs`` (a number, or 'auto') caps the jobs at a time; 'auto' is the default except for ``local``
    (default 1). 'auto': Slurm runs every job of the stage at once (the cluster queues them); torchrun on GPUs one job
    per GPU slice (also the most a number gets); on a CPU one process per core (each job takes ``threads_per_job`` x
    its processes); a local job with a GPU runs alone. Threads: ``threads_per_job``, else a Slurm task's
    ``cpus_per_task``, else 1.
    """
    import torch

    threads = int(cfg.get("threads_per_job") or (executor.resources.get("cpus_per_task") if kind == "slurm" else 1)
                  or 1)
    cap = cfg.get("parallel_jobs", 1 if kind == "local" else "auto")
    # torchrun on GPUs: never more jobs than GPU slices (a job never shares a GPU), whatever parallel_jobs says
    slices = executor.max_parallel if kind == "torchrun" else None
    if cap != "auto":
        asked = max(1, int(cap))
        return (min(asked, slices) if slices else asked), threads
    if kind == "slurm":
        return max(1, n_jobs), threads
    if slices is not None:
        return slices, threads
    if torch.cuda.is_available():
        return 1, threads
    return max(1, (os.cpu_count() or 1) // (threads * executor.world_size)), threads


def parse_slurm_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``['tasks_per_node=2', 'sbatch.exclusive=true']`` -> ``{'tasks_per_node': 2, 'sbatch': {'exclusive': True}}``:
    values read as ``--cfg-options`` reads them, dotted keys as nested dicts (``sbatch``, a stage's own keys)."""
    from mixbench.base.config import ConfigOptionError, parse_cfg_options

    try:
        flat = parse_cfg_options(pairs)
    except ConfigOptionError as err:
        raise ValueError(str(err).replace("--cfg-options", "--slurm", 1)) from None
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *path, last = key.split(".")
        node = nested
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--slurm {key}=...: {part} is set to {node!r}, not to a dict of keys")
        node[last] = value
    return nested


def job_rows(root: str | Path) -> list[dict[str, str]]:
    """One row per job recorded under ``root`` (a pipeline's work dir): Slurm jobs with their job id, state and
    reason (from the cluster), then this machine's process groups that ``jobs.json`` lists."""
    from mixbench.executors.slurm import SlurmExecutor
    from mixbench.jobs import LocalExecutor

    rows = [{"executor": "slurm", **row} for row in SlurmExecutor.status(root)]
    for row in LocalExecutor(state_dir=root).status():
        rows.append({"executor": "local", "label": row["label"], "job_id": row["pgid"], "state": row["state"],
                     "reason": f"on {row['host']} since {row['since']}", "log": row["log"]})
    return rows
