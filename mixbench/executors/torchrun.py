"""Running jobs on one multi-GPU node: each job is ``torch.distributed.run`` with ``nproc_per_job`` processes on its
own slice of the GPUs, as many jobs at once as there are slices.

Without GPUs the same command runs ``nproc_per_job`` gloo processes per job (how it is tested on CPU machines).
Processes, logs and leftovers are handled as for :class:`mixbench.jobs.LocalExecutor`, which this extends.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mixbench.executors.argv import with_launcher
from mixbench.jobs import LocalExecutor

__all__ = ["TorchrunExecutor", "visible_devices"]


def visible_devices() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else every device torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


class TorchrunExecutor(LocalExecutor):
    """Runs each job as ``python -m torch.distributed.run --standalone --nproc-per-node N -m mixbench.cli ARGV
    --launcher pytorch``.

    Args:
        nproc_per_job: processes (GPUs) per job.
        devices: the GPU ids to share out (default :func:`visible_devices`); empty: CPU, gloo processes.
        state_dir, grace: as for :class:`mixbench.jobs.LocalExecutor`.
    """

    def __init__(self, nproc_per_job: int = 1, devices: list[str] | None = None,
                 state_dir: str | Path | None = None, grace: float = 10.0) -> None:
        super().__init__(state_dir=state_dir, grace=grace)
        if nproc_per_job < 1:
            raise ValueError(f"nproc_per_job must be at least 1, got {nproc_per_job}")
        self.nproc_per_job = nproc_per_job
        devices = visible_devices() if devices is None else list(devices)
        if devices and len(devices) < nproc_per_job:
            raise ValueError(f"a job needs {nproc_per_job} GPUs but only {len(devices)} are visible "
                             f"({','.join(devices)})")
        n = nproc_per_job
        # Whole slices only: a job never shares a GPU with another job.
        self._free: list[list[str]] = [devices[i:i + n] for i in range(0, len(devices) - n + 1, n)]
        self._taken: dict[int, list[str]] = {}
        self._slices = len(self._free)

    launcher = "pytorch"

    @property
    def world_size(self) -> int:
        """Processes per job."""
        return self.nproc_per_job

    @property
    def max_parallel(self) -> int | None:
        """Jobs that can run at once (one per GPU slice); None on CPU, where the caller decides."""
        return self._slices or None

    def command(self, job: Any) -> list[str]:
        """The torchrun command line of ``job``; ``--standalone`` gives each job its own free rendezvous port."""
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(self.nproc_per_job),
                "-m", "mixbench.cli", *with_launcher(job.argv, "pytorch")]

    def start(self, job: Any, env: dict[str, str]) -> None:
        """Start ``job`` on a free GPU slice (``CUDA_VISIBLE_DEVICES``), or as gloo processes on CPU."""
        if self.max_parallel is not None:
            if not self._free:
                raise RuntimeError(f"{job.label}: no free GPU slice; run at most {self.max_parallel} job(s) at "
                                   f"once with {self.nproc_per_job} GPU(s) each")
            slot = self._free.pop(0)
            env = dict(env, CUDA_VISIBLE_DEVICES=",".join(slot))
            self._taken[id(job)] = slot
        else:
            env = dict(env, CUDA_VISIBLE_DEVICES="")
        super().start(job, env)

    def poll(self, job: Any) -> int | None:
        rc = super().poll(job)
        if rc is not None:
            self._release(job)
        return rc

    def stop(self, jobs: list[Any]) -> None:
        super().stop(jobs)
        for job in jobs:
            self._release(job)

    def _release(self, job: Any) -> None:
        if (slot := self._taken.pop(id(job), None)) is not None:
            self._free.append(slot)
