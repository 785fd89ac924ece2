"""Starting the processes of a run: mmengine's launchers on GPUs, and the adjustments its Runner needs on CPU.

On GPUs mmengine's launchers (``launcher='pytorch'|'slurm'``) do everything (nccl). On CPU they call
``torch.cuda.set_device``, so the gloo process group is initialised here first (mmengine then skips its own
initialisation) and DDP gets no GPU id. Every stage starts its processes through :func:`init_launcher` before its
Runner is built, so each process knows its rank before it takes the work dir.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

LAUNCHERS = ("none", "pytorch", "slurm")


def init_cpu_process_group(launcher: str) -> int:
    """Initialise gloo from torchrun's environment (or slurm's, mapped to it); return the world size.

    Args:
        launcher: ``'none'`` (one process, nothing to do), ``'pytorch'`` (torchrun) or ``'slurm'`` (srun).
    """
    import torch.distributed as dist

    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; use one of {LAUNCHERS}")
    if launcher == "none":
        return 1
    if not dist.is_initialized():
        if launcher == "slurm":  # map slurm's variables to the env:// ones torch reads
            os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
            os.environ.setdefault("WORLD_SIZE", os.environ["SLURM_NTASKS"])
            os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
            os.environ.setdefault("MASTER_PORT", "29500")
            if "MASTER_ADDR" not in os.environ:
                nodes = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_NODELIST"]],
                                       capture_output=True, text=True, check=True).stdout.split()
                os.environ["MASTER_ADDR"] = nodes[0]
        dist.init_process_group(backend="gloo")
    return dist.get_world_size()


def use_cpu_ddp(cfg: Any) -> None:
    """Runner config for gloo: DDP without a device id (the default passes the local rank as a GPU id)."""
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None)
    cfg.env_cfg = dict(cfg.get("env_cfg") or {}, dist_cfg=dict(backend="gloo"))


def init_launcher(launcher: str) -> int:
    """Initialise the process group of ``launcher`` (if any) and return the world size.

    GPUs: mmengine's ``init_dist`` with nccl; CPU: :func:`init_cpu_process_group` (gloo).
    """
    import torch
    import torch.distributed as dist

    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; use one of {LAUNCHERS}")
    if launcher != "none" and torch.cuda.is_available():
        from mmengine.dist import init_dist

        if not dist.is_initialized():
            init_dist(launcher, backend="nccl")
        return dist.get_world_size()
    return init_cpu_process_group(launcher)
