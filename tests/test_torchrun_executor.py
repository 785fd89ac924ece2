"""The torchrun executor: GPU slices shared out one per job, and a real 2-process gloo job on CPU."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from tiny_voc import DEMO_VOC, ONE_EPOCH, TINY_VOC

from mixbench.executors.torchrun import TorchrunExecutor
from mixbench.jobs import Job, run_jobs

TINY = [*TINY_VOC, *ONE_EPOCH]


def transfer_argv(synthetic_root: dict[str, Path], out: Path) -> list[str]:
    """``mixbench transfer`` of a random-init backbone on the tiny VOC set, its records under ``out/rec``."""
    return ["transfer", "random", "--config", str(DEMO_VOC), "--data-root", str(synthetic_root["voc"].parent),
            "--records-dir", str(out / "rec"), "--work-root", str(out / "wd"), "--cfg-options", *TINY]


def _environ(pid: int) -> dict[str, str]:
    """The environment a running process was started with, as the kernel holds it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_each_job_gets_its_own_whole_slice_of_the_gpus(tmp_path):
    executor = TorchrunExecutor(nproc_per_job=2, devices=["0", "1", "2", "3", "5"])
    assert executor.max_parallel == 2  # "5" alone is not a whole slice
    # `pretrain --help` under torchrun: real processes, started with the slice, ending at once
    jobs = [Job(f"job{i}", ["pretrain", "--help"], tmp_path / f"job{i}.log") for i in range(3)]
    executor.start(jobs[0], dict(os.environ))
    executor.start(jobs[1], dict(os.environ))
    seen = [_environ(j.handle.pid)["CUDA_VISIBLE_DEVICES"] for j in jobs[:2]]
    with pytest.raises(RuntimeError, match="no free GPU slice"):
        executor.start(jobs[2], dict(os.environ))
    assert executor.command(jobs[0])[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                            "--nproc-per-node", "2"]
    assert executor.command(jobs[0])[-3:] == ["--help", "--launcher", "pytorch"]
    for job in jobs[:2]:
        while executor.poll(job) is None:
            time.sleep(0.1)
    executor.start(jobs[2], dict(os.environ))  # a finished job's slice is free again
    seen.append(_environ(jobs[2].handle.pid)["CUDA_VISIBLE_DEVICES"])
    executor.stop([jobs[2]])
    assert seen == ["0,1", "2,3", "0,1"]


@pytest.mark.slow
def test_a_transfer_job_runs_as_two_gloo_processes(synthetic_root, tmp_path):
    job = Job("transfer", transfer_argv(synthetic_root, tmp_path), tmp_path / "transfer.log")
    run_jobs([job], parallel=1, threads=1, executor=TorchrunExecutor(nproc_per_job=2, devices=[]))
    [path] = (tmp_path / "rec").rglob("*.json")
    record = json.loads(path.read_text())
    assert (record["launcher"], record["config"]["settings"]["world_size"]) == ("pytorch", 2)
    assert set(record["metrics"]) == {"pascal_voc/AP50", "pascal_voc/mAP", "pascal_voc/recall"}
