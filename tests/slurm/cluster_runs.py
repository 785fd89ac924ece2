"""Helpers of the Slurm pipeline tests: the demo pipeline's stages at test size, ``mixbench`` run as a user runs it
(a process of its own), and what the cluster itself says of the jobs (squeue, sacct), read without mixbench's code.

Every wait has a deadline; a command that outlives its timeout is killed and fails the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tiny_voc import ONE_EPOCH, PAPER_AT_TINY_SCALE, TINY_VOC

REPO = Path(__file__).resolve().parents[2]
# States in which Slurm may still run a job (squeue's long names).
ACTIVE = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "SUSPENDED"}


def tiny_pretrain_options(data_root: Path, epochs: int = 1) -> dict[str, Any]:
    """A pretraining run of seconds on the tiny preset: 32 images, batches of 8, a queue of 64 keys."""
    return {"train_dataloader.dataset.root": f"{data_root}/imagenet/train", "train_cfg.max_epochs": epochs,
            "train_dataloader.batch_size": 8, "train_dataloader.num_workers": 0,
            "train_dataloader.persistent_workers": False, "train_dataloader.dataset.size": 32, "model.K": 64}


TINY_TRANSFER = dict(option.split("=", 1) for option in [*TINY_VOC, *ONE_EPOCH])


def tiny_pipeline(folder: Path, data_root: Path, pretrain: dict[str, dict[str, Any]] | None = None) -> Path:
    """``folder/pipe.py``: the demo pipeline's stages (MoCo pretraining -> convert -> VOC Faster R-CNN with a
    random-init baseline -> tables) on the tiny synthetic preset, one seed; ``pretrain``: name -> cfg_options of
    each MoCo R18 run (default: one tiny run named moco). Work and results under ``folder``."""
    entries = [dict(name=name, config=str(REPO / "configs/pretrain/moco_r18_synthetic.py"), cfg_options=options)
               for name, options in (pretrain or {"moco": tiny_pretrain_options(data_root)}).items()]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipe.py"
    path.write_text(
        f"data_dir = {str(data_root)!r}\nsynthetic = dict(preset='tiny', seed=0)\n"
        f"work_dir = {str(folder / 'work')!r}\nresults_dir = {str(folder / 'results')!r}\n"
        f"seeds = [0]\nthreads_per_job = 1\nrandom_init = True\npretrain = {entries!r}\n"
        f"bn_modes = ['frozen']\nsuites = ['voc']\nsuite_scale = 'demo'\ntransfer_cfg_options = {TINY_TRANSFER!r}\n"
        "slurm = dict(cpus_per_task=1, timeout_min=15, max_requeues=0)\n")
    return path


FULL_SCALE = REPO / "configs/pipeline/moco_vs_mix_r50_in1k.py"


def full_scale_at_test_size(folder: Path, data_root: Path) -> list[str]:
    """``--cfg-options`` that shrink :data:`FULL_SCALE` to seconds on the tiny preset, its stages and their order
    unchanged: both pretrainings as R18 for one epoch of 32 images, then the paper VOC Faster R-CNN (frozen BN only,
    one seed) on 128x96 images with the demo's RoI counts, and Slurm jobs of one task and one CPU, no GPU, a short
    time limit (pretraining 10 min, transfer 9: each stage's own), no requeue. Work and results under ``folder``."""
    options = [f"data_dir={data_root}", f"work_dir={folder / 'work'}", f"results_dir={folder / 'results'}",
               "suites=[voc]", "bn_modes=[frozen]", "seeds=[0]"]
    pretrain = {**tiny_pretrain_options(data_root), "model.arch": "resnet18"}
    options += [f"pretrain.{i}.cfg_options.{k}={v}" for i in (0, 1) for k, v in pretrain.items()]
    transfer = [*PAPER_AT_TINY_SCALE, *ONE_EPOCH,
                "optim_wrapper.optimizer.lr=0.00125"]  # the paper's lr 0.01 x 2 / 16 images, as its batch is 2
    options += [f"transfer_cfg_options.{option}" for option in transfer]
    options += ["slurm.tasks_per_node=1", "slurm.gpus_per_task=None", "slurm.cpus_per_task=1", "slurm.mem_gb=4",
                "slurm.pretrain.timeout_min=10", "slurm.pretrain.max_requeues=0",
                "slurm.transfer.timeout_min=9", "slurm.transfer.max_requeues=0"]
    return options


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")


def mixbench(*args: str, timeout_s: float) -> subprocess.CompletedProcess:
    """``mixbench ARGS`` from the repository root, its output captured."""
    return subprocess.run([sys.executable, "-m", "mixbench.cli", *args], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=timeout_s)


class Running:
    """A ``mixbench`` command running in the background, its stdout and stderr in files beside ``stem``."""

    def __init__(self, stem: Path, *args: str) -> None:
        self.out, self.err = stem.with_suffix(".out"), stem.with_suffix(".err")
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mixbench.cli", *args], cwd=REPO, env=_env(),
                                         stdout=out, stderr=err)

    def output(self) -> str:
        return f"stdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()}"

    def end(self, sig: signal.Signals, timeout_s: float = 60.0) -> int:
        """Send ``sig``; the exit status once the command has ended."""
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, running: Running | None = None) -> Any:
    """``check()``'s first true value, polled every second; fails after ``timeout_s`` or when ``running`` ends."""
    deadline = time.time() + timeout_s
    while not (found := check()):
        if running is not None and running.proc.poll() is not None:
            raise AssertionError(f"the command ended (exit {running.proc.returncode}) before {what}\n"
                                 f"{running.output()}")
        if time.time() > deadline:
            raise AssertionError(f"not {what} after {timeout_s:.0f} s"
                                 + (f"\n{running.output()}" if running is not None else ""))
        time.sleep(1)
    return found


def job_records(work: Path) -> dict[str, dict[str, Any]]:
    """The Slurm job records under a work dir (``slurm/*.json`` beside each job's log), by label."""
    found = {}
    for path in work.rglob("slurm/*.json"):
        try:
            entry = json.loads(path.read_text())
        except ValueError:  # being replaced at this moment
            continue
        found[entry["label"]] = entry
    return found


def state(job_id: str) -> str:
    """Slurm's state of a job: the controller's (squeue), else accounting's (sacct); '' when neither knows it."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                         timeout=60).stdout.split()
    if out:
        return out[0]
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State"], capture_output=True, text=True,
                         timeout=60).stdout.split()
    return out[0] if out else ""


def queued(job_ids: list[str]) -> list[str]:
    """Those of ``job_ids`` squeue lists as queued or running."""
    out = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i"], capture_output=True, text=True,
                         timeout=60).stdout
    return sorted(set(out.split()) & set(job_ids))


def submitted_since(start: str) -> dict[str, list[str]]:
    """Job name -> ids of the ``mixbench-*`` jobs submitted at or after ``start`` (``%Y-%m-%dT%H:%M:%S``), from
    accounting."""
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-S", start, "-o", "JobID,JobName,Submit"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    names: dict[str, list[str]] = {}
    for line in out.splitlines():
        job_id, name, submit = line.split("|")
        if name.startswith("mixbench-") and submit >= start:
            names.setdefault(name, []).append(job_id)
    return names


def cancel_recorded(work: Path) -> None:
    """scancel every job recorded under ``work``: a failed test leaves nothing running on the cluster."""
    ids = [r["job_id"] for r in job_records(work).values()]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60)


def table_body(results: Path) -> str:
    """``tables.md`` without the lines that name where and when it was made (its source comment and the
    'Measured <dates> on <machine>' line)."""
    lines = (results / "tables.md").read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("<!--", "Measured ")))


def record_metrics(results: Path) -> dict[tuple[str, str, int], dict[str, float]]:
    """(config, checkpoint, seed) -> metrics of every run record under ``results/records``."""
    found = {}
    for path in (results / "records").rglob("*.json"):
        record = json.loads(path.read_text())
        found[(record["config"]["name"], record["checkpoint"]["name"], record["seed"])] = record["metrics"]
    return found
