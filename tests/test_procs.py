"""Jobs end with the process that started them, leave nothing behind, and a rerun stops what a dead run left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixbench.base.procs import stop_group
from mixbench.jobs import JOBS_FILE, Job, JobError, LocalExecutor, run_jobs

# A job that starts a grandchild (as torchrun starts its workers), writes "job-pid grandchild-pid" and waits.
JOB = ("import subprocess, sys, time, os; "
       "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
       "open(sys.argv[1] + '.tmp', 'w').write(f'{os.getpid()} {g.pid}'); "
       "os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(float(sys.argv[2]))")


class ScriptExecutor(LocalExecutor):
    """Runs :data:`JOB` instead of a ``mixbench`` sub-command; ``job.argv`` is (pid file, seconds)."""

    def command(self, job: Job) -> list[str]:
        return [sys.executable, "-c", JOB, *job.argv]


def alive(pid: int) -> bool:
    """Running (an unreaped zombie counts as gone: it no longer runs)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: list[int], seconds: float = 20.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while not path.is_file():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.1)
    return list(map(int, path.read_text().split()))


def start_pipeline_like_parent(tmp_path: Path) -> subprocess.Popen:
    """A process that runs one :data:`JOB` through run_jobs, its groups recorded in ``tmp_path/work``."""
    code = ("import pathlib, sys; sys.path.insert(0, sys.argv[1])\n"
            "from test_procs import ScriptExecutor\n"
            "from mixbench.jobs import Job, run_jobs\n"
            "tmp = pathlib.Path(sys.argv[2])\n"
            "run_jobs([Job('sleeper', [str(tmp / 'pids'), '300'], tmp / 'job.log')], 1, 1,\n"
            "         executor=ScriptExecutor(tmp / 'work'))\n")
    return subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_job_and_its_children_end_with_the_parent(tmp_path, sig):
    """SIGTERM: run_jobs stops its jobs. SIGKILL: nothing runs in the parent any more; the kernel tells the job."""
    parent = start_pipeline_like_parent(tmp_path)
    job, grandchild = wait_for(tmp_path / "pids", parent)
    os.kill(parent.pid, sig)  # the parent alone, not its group
    out, _ = parent.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert parent.returncode != 0 and "Interrupted: received SIGTERM; stopping 1 running job(s) (sleeper)" in out
    left = wait_gone([job, grandchild])
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []


def test_a_rerun_stops_the_jobs_a_dead_run_left(tmp_path):
    parent = start_pipeline_like_parent(tmp_path)
    job, grandchild = wait_for(tmp_path / "pids", parent)
    (leader,) = map(int, json.loads((tmp_path / "work" / JOBS_FILE).read_text()))
    # Parent and group leader both killed (as by the OOM killer): the job and its child live on. The leader is
    # frozen first so that it cannot act on its parent's death in between.
    os.kill(leader, signal.SIGSTOP)
    os.kill(parent.pid, signal.SIGKILL)
    os.kill(leader, signal.SIGKILL)
    parent.wait()
    try:
        time.sleep(1.0)
        assert alive(job) and alive(grandchild)
        assert stop_group(leader, "another-job") == [] and alive(job)  # a group id alone is not proof
        said: list[str] = []
        assert LocalExecutor(tmp_path / "work", grace=5.0).stop_leftovers(said.append) == ["sleeper"]
        assert wait_gone([job, grandchild]) == []
        (line,) = said
        assert line.startswith("sleeper: still running from a run that died") and str(job) in line
        assert json.loads((tmp_path / "work" / JOBS_FILE).read_text()) == {}
    finally:
        for pid in (job, grandchild):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_an_ended_job_leaves_nothing_behind_and_its_exit_status_is_kept(tmp_path):
    """The job exits at once with status 3; the grandchild it started must not outlive it."""
    with pytest.raises(JobError, match=r"failed: sleeper \(log .*job.log\)"):
        run_jobs([Job("sleeper", [str(tmp_path / "pids"), "0"], tmp_path / "job.log")], 1, 1,
                 executor=ExitExecutor(tmp_path / "work"), log=lambda msg: None)
    _, grandchild = map(int, (tmp_path / "pids").read_text().split())
    assert wait_gone([grandchild]) == []
    assert json.loads((tmp_path / "work" / JOBS_FILE).read_text()) == {}


class ExitExecutor(ScriptExecutor):
    def command(self, job: Job) -> list[str]:
        return [*super().command(job)[:2], JOB + "; sys.exit(3)", *job.argv]


def test_the_supervisor_passes_on_the_exit_status(tmp_path):
    job = Job("x", [str(tmp_path / "pids"), "0"], tmp_path / "job.log")
    ex = ExitExecutor()
    ex.start(job, dict(os.environ))
    while (rc := ex.poll(job)) is None:
        time.sleep(0.05)
    assert rc == 3
