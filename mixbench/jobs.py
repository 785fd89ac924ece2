"""Running a stage's jobs: ``mixbench`` sub-commands as child processes, a few at a time, with live progress.

A :class:`Job` is one ``mixbench`` sub-command and its log file. An executor starts jobs, says when one has ended
and stops running ones; :func:`run_jobs` keeps up to ``parallel`` jobs running through it. :class:`LocalExecutor`
runs each job on this machine as a process group that ends with this process (:mod:`mixbench.base.procs`), and
keeps the groups it started in ``<state dir>/jobs.json``, so that a rerun can stop what a killed run left behind.

On a CPU-only machine several one-thread jobs side by side finish sooner than multi-threaded jobs one after
another: OpenMP's synchronisation costs more than it gains on small detection steps. With a GPU the default is
one job at a time (each job takes the GPUs it is launched with). :func:`mixbench.executors.jobs_at_once` sets both.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mixbench.base.io import atomic_write_json, sha256_file
from mixbench.base.procs import (
    group_members,
    raise_on_signals,
    signal_group,
    start_in_own_group,
    stop_group,
    stop_groups,
)
from mixbench.progress import ProgressBoard

__all__ = ["Executor", "Job", "JobError", "LocalExecutor", "finished_pretraining", "last_checkpoint", "run_jobs"]

JOBS_FILE = "jobs.json"


class JobError(RuntimeError):
    """One or more jobs failed; the message names each job and its log."""


@dataclass
class Job:
    """One ``mixbench`` sub-command (``argv`` without the program name), its output in ``log``."""

    label: str
    argv: list[str]
    log: Path
    handle: Any = None  # what the executor follows the running job by (LocalExecutor: the group leader's Popen)
    started: float = 0.0
    returncode: int | None = None


class Executor(Protocol):
    """Where and how jobs run. :func:`run_jobs` needs only these three calls; it also shows an executor's
    ``describe(job) -> str`` (a short state, e.g. Slurm's ``PENDING (Priority)``) on the progress board and names
    the ``failures`` (``{label: why}``) it keeps, when the executor has them."""

    def start(self, job: Job, env: dict[str, str]) -> None:
        """Start ``job`` with ``env``, setting ``job.handle``."""

    def poll(self, job: Job) -> int | None:
        """The job's exit status once it has ended, else None."""

    def stop(self, jobs: list[Job]) -> None:
        """Stop the running ``jobs`` and everything they started."""


def _print_log(msg: str) -> None:
    print(f"[jobs {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class LocalExecutor:
    """Runs each job as ``python -m mixbench.cli ARGV`` on this machine, in a process group that ends with this
    process and leaves nothing behind when the job ends.

    Args:
        state_dir: where ``jobs.json`` lists the running groups (None: not recorded; a rerun cannot find them).
        grace: seconds between SIGTERM and SIGKILL when jobs are stopped.
    """

    def __init__(self, state_dir: str | Path | None = None, grace: float = 10.0) -> None:
        self.registry = Path(state_dir) / JOBS_FILE if state_dir is not None else None
        self.grace = grace
        self._entries: dict[str, dict[str, Any]] = {}

    world_size = 1  # processes per job
    launcher = "none"  # how a job's processes join a process group (``--launcher``)

    def command(self, job: Job) -> list[str]:
        """The command line of ``job``."""
        return [sys.executable, "-m", "mixbench.cli", *job.argv]

    def start(self, job: Job, env: dict[str, str]) -> None:
        token = uuid.uuid4().hex
        job.log.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log, "ab") as fh:
            job.handle = start_in_own_group(self.command(job), token=token, stdout=fh, stderr=subprocess.STDOUT,
                                            env=env)
        self._entries[str(job.handle.pid)] = {"label": job.label, "token": token, "log": str(job.log),
                                              "host": socket.gethostname(), "since": time.strftime("%H:%M:%S")}
        self._save()

    def poll(self, job: Job) -> int | None:
        """The job's exit status once it has ended, else None."""
        proc = job.handle
        if proc.returncode is None:
            try:
                ended = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # already reaped
                ended = True
            if ended is None:
                return None
            # Not yet reaped, so the group id cannot be reused: whatever the job left in its group goes with it.
            signal_group(proc.pid, signal.SIGKILL)
        rc = proc.wait()
        self._forget(job)
        return rc

    def stop(self, jobs: list[Job]) -> None:
        """Stop the running ``jobs`` and everything they started (SIGTERM, ``grace``, SIGKILL)."""
        stop_groups([j.handle for j in jobs], self.grace)
        for job in jobs:
            self._forget(job)

    def status(self) -> list[dict[str, str]]:
        """One row per group ``jobs.json`` lists: label, pgid, host, since, log, state ('running' while any
        process of the job is alive on this machine, 'ended', or 'unknown' on another machine)."""
        rows = []
        for pgid, entry in self._listed(_print_log).items():
            if entry.get("host") != socket.gethostname():
                state = "unknown"
            else:
                state = "running" if group_members(int(pgid), entry["token"]) else "ended"
            rows.append({"label": entry["label"], "pgid": pgid, "host": str(entry.get("host")),
                         "since": str(entry.get("since")), "log": entry["log"], "state": state})
        return rows

    def _listed(self, log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
        """The groups ``jobs.json`` lists (pgid -> entry); {} when it is absent or unreadable (said in ``log``)."""
        if self.registry is None or not self.registry.is_file():
            return {}
        try:
            entries = json.loads(self.registry.read_text())
        except (OSError, ValueError) as err:
            log(f"{self.registry}: unreadable ({err}); leftover jobs cannot be looked for")
            return {}
        return entries if isinstance(entries, dict) else {}

    def stop_leftovers(self, log: Callable[[str], None] = _print_log) -> list[str]:
        """Stop the jobs a run that died (kill -9, a lost machine) left running, naming each; returns their labels.

        Call it while holding the work dir's lock: then no live run owns the groups ``jobs.json`` lists.
        """
        entries = self._listed(log)
        if not entries:
            return []
        stopped = []
        for pgid, entry in entries.items():
            if entry.get("host") != socket.gethostname():
                log(f"{entry['label']}: started on {entry.get('host')}, not here; check it is not still running")
                continue
            pids = stop_group(int(pgid), entry["token"], self.grace)
            if pids:
                log(f"{entry['label']}: still running from a run that died (since {entry.get('since')}, process "
                    f"group {pgid}, pids {', '.join(map(str, pids))}); stopped it before going on")
                stopped.append(entry["label"])
        atomic_write_json(self.registry, {})
        return stopped

    def _forget(self, job: Job) -> None:
        if self._entries.pop(str(job.handle.pid), None) is not None:
            self._save()

    def _save(self) -> None:
        if self.registry is not None:
            atomic_write_json(self.registry, self._entries)


def run_jobs(jobs: list[Job], parallel: int, threads: int, board: ProgressBoard | None = None,
             executor: Executor | None = None, log: Callable[[str], None] = _print_log) -> None:
    """Run ``jobs`` with at most ``parallel`` at a time; raise :class:`JobError` naming every failed job and its log.

    While they run, ``board`` (default: a :class:`mixbench.progress.ProgressBoard` on stdout) shows one line per
    running job with its stage, epoch/iteration and ETA, read from the job's mmengine log, and the executor's
    ``describe(job)`` when it has one (a Slurm job's state). SIGINT and SIGTERM
    raise :class:`mixbench.base.procs.Interrupted`; on it, or any other exception, the running jobs are stopped.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    executor = executor or LocalExecutor()
    board = board or ProgressBoard()
    pending, running, failed = list(jobs), [], []

    def say(msg: str) -> None:
        board.clear()
        log(msg)

    with raise_on_signals():
        try:
            _run_job_loop(executor, pending, running, failed, parallel, env, board, say)
        except BaseException as err:
            if running:
                say(f"{type(err).__name__}: {err}; stopping {len(running)} running job(s) "
                    f"({', '.join(j.label for j in running)})")
                executor.stop(running)
            raise
    board.clear()
    if failed:
        raise JobError("failed: " + "; ".join(f"{j.label} ({_why(executor, j)})" for j in failed))


def _why(executor: Executor, job: Job) -> str:
    """What the executor knows of the job's failure (Slurm: job id, state, reason, log), else its log."""
    return getattr(executor, "failures", {}).get(job.label) or f"log {job.log}"


# The one-line error every mixbench command ends with when it stops (``mixbench transfer: error: ...``).
_COMMAND_ERROR = re.compile(r"mixbench [\w-]+: error: ")


def _last_lines(path: Path, n: int = 15) -> list[str]:
    """The last ``n`` lines of a job's log, after the command's own error line when that lies further up (a Slurm
    job's log ends with submitit's traceback and srun's message)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:  # a job that never started (refused, lost) may have no log
        return [f"({path}: no log)"]
    earlier = [line for line in lines[:-n] if _COMMAND_ERROR.match(line)]
    return [earlier[-1], "..."] + lines[-n:] if earlier else lines[-n:]


def _run_job_loop(executor: Executor, pending: list[Job], running: list[Job], failed: list[Job],
                  parallel: int, env: dict[str, str], board: ProgressBoard, log: Callable[[str], None]) -> None:
    """The scheduling loop of :func:`run_jobs` (its caller stops the running jobs if this raises)."""
    done = 0
    describe = getattr(executor, "describe", None)
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            executor.start(job, env)
            job.started = time.time()
            log(f"{job.label}: started (log {job.log})")
            running.append(job)
        time.sleep(0.5)
        for job in list(running):
            if (rc := executor.poll(job)) is None:
                continue
            running.remove(job)
            job.returncode, seconds = rc, time.time() - job.started
            if rc == 0:
                done += 1
                log(f"{job.label}: done in {seconds:.0f} s")
            else:
                tail = _last_lines(job.log)
                why = getattr(executor, "failures", {}).get(job.label)
                log(f"{job.label}: FAILED (exit {rc}) after {seconds:.0f} s{f' ({why})' if why else ''}; end of "
                    f"{job.log}:")
                print("\n".join("    " + line for line in tail), flush=True)
                failed.append(job)
        if running:
            board.update([(j.label, j.log, j.started, describe(j) if describe else None) for j in running],
                         done, len(failed), len(pending))


def last_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint mmengine's ``last_checkpoint`` marker in ``work_dir`` names, if it still exists."""
    marker = work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    p = Path(marker.read_text().strip())
    p = p if p.is_absolute() else Path.cwd() / p
    return p if p.is_file() else None


def finished_pretraining(stage: Path, key: dict[str, Any] | None) -> Path | None:
    """The checkpoint a finished pretraining job left (its bytes unchanged since), else None.

    ``stage`` is the run's ``stage.json``; with ``key``, only a run of that same key counts (``None``: the caller's
    work dir is already per key).
    """
    try:
        done = json.loads(stage.read_text())
        ckpt, sha256 = Path(done["checkpoint"]), done["sha256"]
    except (OSError, ValueError, KeyError, TypeError):  # absent or unreadable: not finished, so trained again
        return None
    if key is not None and done.get("run_key") != key:
        return None
    return ckpt if ckpt.is_file() and sha256_file(ckpt) == sha256 else None
