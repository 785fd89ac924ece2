"""Where a pipeline's jobs run: :class:`mixbench.jobs.LocalExecutor` (this machine's processes, the default),
:class:`~mixbench.executors.torchrun.TorchrunExecutor` (one multi-GPU node) and
:class:`~mixbench.executors.slurm.SlurmExecutor` (a Slurm cluster, through submitit).

The executor modules are imported on use, so ``mixbench`` needs submitit only for Slurm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

        return TorchrunExecutor(nproc_per_job=int(cfg.get("gpus_per_job", 1)), state_dir=state_dir)
    if kind == "slurm":
        from mixbench.executors.slurm import SlurmExecutor

        return SlurmExecutor(stage_resources(cfg.get("slurm"), stage))
    raise ValueError(f"executor: unknown {kind!r}; use one of {', '.join(EXECUTORS)}")
