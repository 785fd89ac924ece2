"""The Slurm executor against a real one-node cluster: a job's life (submit, run, record), a 2-task gloo job,
a rerun that follows the queued job, a time limit survived by requeueing, scancel and an impossible request."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from tiny_voc import DEMO_VOC, ONE_EPOCH, TINY_VOC

from mixbench.base.safe_load import safe_torch_load
from mixbench.executors.slurm import ACTIVE, SlurmExecutor
from mixbench.jobs import Job, JobError, run_jobs

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
MOCO_MIX = REPO / "configs/pretrain/moco-mix_r18_synthetic.py"
TINY = [*TINY_VOC, *ONE_EPOCH]


def _unique(what: str) -> str:
    """A job label no earlier test session used, so the cluster's job names tell this test's jobs apart."""
    return f"{what}-{uuid.uuid4().hex[:8]}"


def _pretrain_job(label: str, root: Path, work_dir: Path, epochs: int, batch: int) -> Job:
    options = [f"train_dataloader.dataset.root={root}/train", f"train_cfg.max_epochs={epochs}",
               f"train_dataloader.batch_size={batch}", "train_dataloader.num_workers=0",
               "train_dataloader.persistent_workers=False", "train_dataloader.dataset.size=32", "model.K=64"]
    argv = ["pretrain", str(MOCO_MIX), "--work-dir", str(work_dir), "--cfg-options", *options]
    return Job(label, argv, work_dir / "mixbench.pretrain.log")


def _data_job(label: str, tmp: Path) -> Job:
    return Job(label, ["demo-data", str(tmp / "data"), "--preset", "tiny"], tmp / "run" / "mixbench.log")


def _sacct(job_id: str, *flags: str, timeout_s: float = 60.0) -> list[str]:
    """Slurm's accounting states of ``job_id`` (``-D``: every requeued run too), read directly once accounting has
    recorded its end (it learns of it seconds after the controller)."""
    deadline = time.time() + timeout_s
    while True:
        out = subprocess.run(["sacct", "-n", "-P", "-X", *flags, "-j", job_id, "-o", "State"], capture_output=True,
                             text=True, check=True, timeout=60).stdout
        states = [line.split()[0] for line in out.splitlines() if line]
        if (states and states[-1] not in ACTIVE) or time.time() > deadline:
            return states
        time.sleep(1)


def _submitted_named(label: str) -> list[str]:
    """Ids of the jobs the controller holds under the executor's name for ``label``, ended ones included (it keeps
    them MinJobAge = 300 s; accounting learns of a job seconds later, so it is not asked here)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-n", f"mixbench-{label}", "-o", "%i"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return out.split()


def _wait_state(executor: SlurmExecutor, job: Job, state: str, timeout_s: float = 120.0) -> None:
    deadline = time.time() + timeout_s
    while executor.describe(job).split()[0] != state:
        assert executor.poll(job) is None, f"{job.label} ended before reaching {state}: {executor.failures}"
        assert time.time() < deadline, f"{job.label} not {state} after {timeout_s} s: {executor.describe(job)}"
        time.sleep(1)


def test_a_job_runs_and_its_record_and_output_sit_beside_its_log(tmp_path):
    job = _data_job(_unique("data"), tmp_path)
    run_jobs([job], parallel=1, threads=1, executor=SlurmExecutor(poll_s=1))
    assert (tmp_path / "data" / "imagenet" / "train").is_dir()
    record = json.loads((tmp_path / "run" / "slurm" / "mixbench.json").read_text())
    assert _sacct(record["job_id"]) == ["COMPLETED"]
    assert job.log == Path(record["log"]) == tmp_path / "run" / "slurm" / f"{record['job_id']}_0_log.out"
    assert "Job completed successfully" in job.log.read_text()


def test_a_two_task_job_trains_one_model_across_both_tasks_with_gloo(synthetic_root, tmp_path):
    job = _pretrain_job(_unique("ddp"), synthetic_root["imagenet"], tmp_path / "wd", epochs=1, batch=4)
    run_jobs([job], parallel=1, threads=1, executor=SlurmExecutor({"tasks_per_node": 2}, poll_s=1))
    ckpt = safe_torch_load(tmp_path / "wd" / "epoch_1.pth")
    assert ckpt["meta"]["iter"] == 4  # 32 images / (2 tasks x 4)
    assert ckpt["state_dict"]["queue_ptr"].item() == 32  # both tasks' keys entered the one queue


def test_a_two_task_transfer_job_runs_and_records_both_tasks(synthetic_root, tmp_path):
    # Its evaluation forks a worker pool: the run ends only if those workers end (none inherits submitit's handlers).
    argv = ["transfer", "random", "--config", str(DEMO_VOC), "--data-root", str(synthetic_root["voc"].parent),
            "--records-dir", str(tmp_path / "rec"), "--work-root", str(tmp_path / "wd"), "--cfg-options", *TINY]
    job = Job(_unique("transfer"), argv, tmp_path / "transfer.log")
    executor = SlurmExecutor({"tasks_per_node": 2, "timeout_min": 4, "max_requeues": 0}, poll_s=1)
    run_jobs([job], parallel=1, threads=1, executor=executor)
    [path] = (tmp_path / "rec").rglob("*.json")
    record = json.loads(path.read_text())
    assert (record["launcher"], record["config"]["settings"]["world_size"]) == ("slurm", 2)
    assert set(record["metrics"]) == {"pascal_voc/AP50", "pascal_voc/mAP", "pascal_voc/recall"}


def test_a_rerun_follows_the_queued_job_instead_of_submitting_it_again(slurm_cluster, tmp_path):
    blocker = subprocess.run(["sbatch", "--parsable", "-c", str(slurm_cluster), "-o", os.devnull, "--wrap",
                              "sleep 120"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        label = _unique("rerun")
        first = SlurmExecutor(poll_s=1)
        job = _data_job(label, tmp_path)
        first.start(job, dict(os.environ))
        _wait_state(first, job, "PENDING")  # queued behind the blocker when the pipeline dies
        submitted = job.handle.job_id
        del first, job

        again = _data_job(label, tmp_path)
        second = SlurmExecutor(poll_s=1)
        second.start(again, dict(os.environ))
        assert again.handle.job_id == submitted
        subprocess.run(["scancel", blocker], check=True)
        deadline = time.time() + 120
        while (rc := second.poll(again)) is None and time.time() < deadline:
            time.sleep(1)
        assert rc == 0, second.failures
    finally:
        subprocess.run(["scancel", blocker])
    assert _submitted_named(label) == [submitted]
    assert (tmp_path / "data" / "imagenet" / "train").is_dir()


def _finish(executor: SlurmExecutor, job: Job, timeout_s: float = 120.0) -> int | None:
    deadline = time.time() + timeout_s
    while (rc := executor.poll(job)) is None and time.time() < deadline:
        time.sleep(1)
    return rc


def test_a_job_that_completed_while_no_run_followed_it_is_collected_not_submitted_again(tmp_path):
    label = _unique("unfollowed")
    job = _data_job(label, tmp_path)
    SlurmExecutor(poll_s=1).start(job, dict(os.environ))  # its pipeline dies before the job ends
    submitted = job.handle.job_id
    assert _sacct(submitted) == ["COMPLETED"]

    again, second = _data_job(label, tmp_path), SlurmExecutor(poll_s=1)
    second.start(again, dict(os.environ))
    assert again.handle.job_id == submitted
    assert _finish(second, again) == 0, second.failures
    # Its end now seen and recorded, the same job given again is a new run (a --force rerun): submitted anew.
    third, executor = _data_job(label, tmp_path), SlurmExecutor(poll_s=1)
    executor.start(third, dict(os.environ))
    assert third.handle.job_id != submitted
    assert _finish(executor, third) == 0, executor.failures
    assert _submitted_named(label) == [submitted, third.handle.job_id]


def _requeued(job_id: str) -> bool:
    """The job has been requeued and waits to start again."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return int(fields["Restarts"]) >= 1 and fields["JobState"] == "PENDING"


def test_a_job_past_its_time_limit_is_requeued_and_finishes_its_run(synthetic_root, tmp_path):
    # Slurm signals up to a minute before the warning time: with a 2-minute limit and 30 s of warning the signal
    # comes 30-90 s in, after the first checkpoint (every 10 epochs: saving one each epoch would double an epoch's
    # time) and before the end (300 epochs took 110-300 s on this project's 2-core machine). Requeued, the job waits
    # 2 minutes (Slurm's delay for requeued batch jobs) and gets the same limit; the test lifts both once the job is
    # requeued, so that the rest of the run fits whatever the machine's load.
    epochs = 300
    job = _pretrain_job(_unique("requeue"), synthetic_root["imagenet"], tmp_path / "wd", epochs, batch=8)
    job.argv.append("default_hooks.checkpoint.interval=10")  # after --cfg-options
    executor = SlurmExecutor({"timeout_min": 2, "signal_delay_s": 30, "max_requeues": 1}, poll_s=1)
    executor.start(job, dict(os.environ))
    job_id, deadline = job.handle.job_id, time.time() + 300
    try:
        while not _requeued(job_id):
            assert executor.poll(job) is None, f"ended before its time limit: {executor.failures}"
            assert time.time() < deadline, "not requeued within 5 minutes"
            time.sleep(1)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=30", "StartTime=now"], check=True)
        deadline = time.time() + 900
        while (rc := executor.poll(job)) is None and time.time() < deadline:
            time.sleep(1)
    finally:
        subprocess.run(["scancel", job_id])
    assert rc == 0, executor.failures
    assert _sacct(job_id, "-D") == ["REQUEUED", "COMPLETED"]
    ckpt = safe_torch_load(tmp_path / "wd" / f"epoch_{epochs}.pth")
    assert (ckpt["meta"]["epoch"], ckpt["meta"]["iter"]) == (epochs, epochs * 4)  # 32 images / 8 per step
    log = job.log.read_text()
    assert "this job is timed-out" in log and "Requeued job" in log
    resumed = re.search(r"resumed epoch: (\d+)", log)
    assert resumed and 0 < int(resumed.group(1)) < epochs, "the requeued run did not continue from a checkpoint"


def _command_processes(work_dir: Path, timeout_s: float = 60.0) -> dict[int, int]:
    """``{pid: ignored-signals mask}`` of the ``mixbench.cli`` processes working in ``work_dir`` (this one node)."""
    deadline = time.time() + timeout_s
    while True:
        found = {}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                status = (proc / "status").read_text()
            except OSError:  # ended meanwhile
                continue
            if b"mixbench.cli" in argv and str(work_dir).encode() in argv:
                found[int(proc.name)] = int(re.search(r"SigIgn:\s+(\w+)", status).group(1), 16)
        if found or time.time() > deadline:
            return found
        time.sleep(0.5)


def test_scancel_of_a_running_job_fails_it_naming_the_job_state_and_log(synthetic_root, tmp_path):
    job = _pretrain_job(_unique("cancel"), synthetic_root["imagenet"], tmp_path / "wd", 500, batch=8)
    executor = SlurmExecutor(poll_s=1)
    executor.start(job, dict(os.environ))
    try:
        _wait_state(executor, job, "RUNNING")
        [row] = SlurmExecutor.status(tmp_path)
        assert (row["job_id"], row["state"]) == (job.handle.job_id, "RUNNING")
        # The command runs in a process of its own, outside submitit's worker and its signal handlers (which its
        # forked workers would inherit), deaf to the requeue signal Slurm sends every process of the job.
        commands = _command_processes(tmp_path / "wd")
        assert commands and all(mask & (1 << (signal.SIGUSR2 - 1)) for mask in commands.values()), commands
    finally:
        subprocess.run(["scancel", job.handle.job_id], check=True)
    deadline = time.time() + 120
    while (rc := executor.poll(job)) is None and time.time() < deadline:
        time.sleep(1)
    assert rc is not None and rc != 0
    why = executor.failures[job.label]
    assert f"Slurm job {job.handle.job_id} ended CANCELLED" in why and str(job.log) in why
    assert why in job.log.read_text()


def test_an_impossible_request_is_refused_at_submit(slurm_cluster, tmp_path):
    label = _unique("toobig")
    job = _data_job(label, tmp_path)
    executor = SlurmExecutor({"cpus_per_task": slurm_cluster + 1}, poll_s=1)
    with pytest.raises(JobError, match=label):
        run_jobs([job], parallel=1, threads=1, executor=executor)
    assert "More processors requested than permitted" in executor.failures[label]
    assert "More processors requested than permitted" in job.log.read_text()
    assert _submitted_named(label) == []
