"""Running jobs on a Slurm cluster through submitit: one Slurm job per ``mixbench`` sub-command.

Each job's sbatch output and its record (``<log stem>.json``: job id, label, command) live in ``slurm/`` beside the
job's log, in the run's work dir. A rerun that finds a record of a queued or running job follows that job instead
of submitting it again, as it does a job that completed unfollowed; a failed, cancelled or vanished one is submitted
anew. A time limit or a preemption reaches
submitit's handler, which requeues the job with :func:`mixbench.executors.argv.resume_argv` (the run continues from
its last mmengine checkpoint).

Job states come from ``squeue``, and ``sacct`` for ended jobs, one call each for all jobs every ``poll_s`` seconds.
A job that stays pending past ``pending_timeout_s``, or whose state cannot be read for ``unknown_timeout_s``, is
given up with a message saying why; none is waited on forever.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixbench.base.io import atomic_write_json
from mixbench.executors.argv import resume_argv, with_launcher

__all__ = ["ACTIVE", "MixbenchCommand", "SlurmExecutor", "SlurmHandle", "find_records", "job_states"]

# States in which a job may still run; every other state is final.
ACTIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED",
                    "CONFIGURING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"})

# Resource keys (the names the pipeline config uses) -> submitit's SlurmExecutor parameters.
RESOURCES = {"nodes": "nodes", "tasks_per_node": "ntasks_per_node", "gpus_per_task": "gpus_per_task",
             "cpus_per_task": "cpus_per_task", "mem_gb": "mem", "timeout_min": "time", "partition": "partition",
             "account": "account", "qos": "qos", "constraint": "constraint", "sbatch": "additional_parameters",
             "signal_delay_s": "signal_delay_s", "setup": "setup"}
DEFAULTS: dict[str, Any] = {"nodes": 1, "tasks_per_node": 1, "cpus_per_task": 1, "timeout_min": 60,
                            "signal_delay_s": 120, "max_requeues": 3}
SACCT_FIELDS = "JobID,State,ExitCode,Reason"


def _print_log(msg: str) -> None:
    print(f"[slurm {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _ignore_requeue_signal() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class MixbenchCommand:
    """What a Slurm job runs: ``python -m mixbench.cli ARGV`` in every task of the job.

    The command runs as a child of submitit's worker. The worker keeps submitit's signal handlers (SIGUSR2: requeue,
    SIGTERM: ignored); inherited by the command's own forked workers (mmdet's evaluation pool) they would keep them
    from ever ending. The child ignores SIGUSR2, which Slurm sends to every process of the job. ``checkpoint`` is
    submitit's hook on a time limit or preemption: the requeued job continues the same run.
    """

    def __init__(self, argv: list[str]) -> None:
        self.argv = list(argv)

    def __call__(self) -> int:
        done = subprocess.run([sys.executable, "-m", "mixbench.cli", *self.argv], preexec_fn=_ignore_requeue_signal)
        if done.returncode:  # a failed job must end FAILED in Slurm's records, not COMPLETED
            raise RuntimeError(f"mixbench {shlex.join(self.argv)} exited with status {done.returncode}")
        return 0

    def checkpoint(self) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(MixbenchCommand(resume_argv(self.argv)))


@dataclass
class SlurmHandle:
    """How a running :class:`mixbench.jobs.Job` is followed: its Slurm job id and record."""

    job_id: str | None
    record: Path
    refused: str | None = None  # sbatch's reason when the request was refused at submit
    seen: float = field(default_factory=time.time)  # when the state was last read
    pending_since: float | None = None


def job_states(job_ids: Iterable[str], timeout_s: float = 60.0) -> dict[str, dict[str, str]]:
    """``{job id: {'State', 'ExitCode', 'Reason'}}``; ids that neither squeue nor sacct knows are absent.

    The controller (``squeue``) is asked first: accounting learns of a change seconds later. Ended jobs are then
    read from ``sacct`` for their exit code (the controller forgets them after MinJobAge). ``State`` is Slurm's first
    word (``CANCELLED by 0`` -> ``CANCELLED``).
    """
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    states: dict[str, dict[str, str]] = {}
    for line in _run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"], timeout_s).splitlines():
        job_id, state, reason = (line.split("|") + ["", ""])[:3]
        if job_id in ids:
            states[job_id] = {"State": state, "ExitCode": "", "Reason": reason}
    ended = [i for i in ids if states.get(i, {}).get("State", "ENDED") not in ACTIVE]
    if ended:
        out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(ended), "-o", SACCT_FIELDS], timeout_s)
        for line in out.splitlines():
            job_id, state, exit_code, reason = (line.split("|") + ["", "", ""])[:4]
            state = state.split()[0] if state else "UNKNOWN"
            if job_id in ended and (job_id not in states or state not in ACTIVE):  # not a lagging record
                states[job_id] = {"State": state, "ExitCode": exit_code, "Reason": reason}
    return states


def _run(cmd: list[str], timeout_s: float) -> str:
    """stdout of ``cmd``, or '' when it fails or hangs (the caller treats the job's state as unknown)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def find_records(root: str | Path) -> list[dict[str, Any]]:
    """Every Slurm job record under ``root`` (a pipeline's work dir), each with its ``record`` path."""
    found = []
    for path in sorted(Path(root).rglob("slurm/*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and "job_id" in entry:
            found.append(dict(entry, record=str(path)))
    return found


def _exit_status(state: str, exit_code: str) -> int:
    """A process-like exit status for a finished job: its exit code, 128+signal, or 1 for a failed state."""
    code, _, sig = exit_code.partition(":")
    if state == "COMPLETED" and code in ("0", ""):
        return 0
    if code.isdigit() and int(code):
        return int(code)
    if sig.isdigit() and int(sig):
        return 128 + int(sig)
    return 1


class SlurmExecutor:
    """Runs each :class:`mixbench.jobs.Job` as one Slurm job; for :func:`mixbench.jobs.run_jobs`.

    Args:
        resources: per-job request, keys of ``RESOURCES`` (``nodes``, ``tasks_per_node``, ``gpus_per_task``,
            ``cpus_per_task``, ``mem_gb``, ``timeout_min``, ``partition``, ``account``, ``qos``, ``constraint``,
            ``sbatch``: extra ``sbatch`` options as a dict, ``signal_delay_s``, ``setup``: shell lines) and
            ``max_requeues`` (time limits survived before the job fails).
        poll_s: seconds between two reads of the job states.
        pending_timeout_s: a job pending longer is cancelled and fails, naming Slurm's reason.
        unknown_timeout_s: a job whose state neither sacct nor squeue reports for this long fails.
        keep_on_stop: :meth:`stop` (Ctrl-C, SIGTERM) leaves the jobs running on the cluster and says how to
            follow them; False cancels them.
    """

    def __init__(self, resources: dict[str, Any] | None = None, poll_s: float = 5.0,
                 pending_timeout_s: float = 86400.0, unknown_timeout_s: float = 600.0, keep_on_stop: bool = True,
                 log: Callable[[str], None] = _print_log) -> None:
        unknown = sorted(set(resources or {}) - set(RESOURCES) - {"max_requeues"})
        if unknown:
            raise ValueError(f"slurm resources: unknown key(s) {', '.join(unknown)}; use "
                             f"{', '.join([*RESOURCES, 'max_requeues'])}")
        self.resources = {**DEFAULTS, **(resources or {})}
        self.poll_s, self.pending_timeout_s, self.unknown_timeout_s = poll_s, pending_timeout_s, unknown_timeout_s
        self.keep_on_stop, self.log = keep_on_stop, log
        self.failures: dict[str, str] = {}  # job label -> why it failed (job id, state, reason, log)
        self._states: dict[str, dict[str, str]] = {}
        self._read_at = 0.0
        self._followed: set[str] = set()

    @property
    def tasks(self) -> int:
        """Processes per job (nodes x tasks per node)."""
        return int(self.resources["nodes"]) * int(self.resources["tasks_per_node"])

    world_size = tasks

    @property
    def launcher(self) -> str:
        """``slurm`` for a job of several tasks (:meth:`command`), else ``none``."""
        return "slurm" if self.tasks > 1 else "none"

    def command(self, job: Any) -> list[str]:
        """The ``mixbench`` argv each task of ``job`` runs (``--launcher slurm`` when it has several)."""
        return with_launcher(job.argv, self.launcher) if self.tasks > 1 else list(job.argv)

    def start(self, job: Any, env: dict[str, str]) -> None:
        """Follow ``job``'s queued or running Slurm job if its record names one, else submit it.

        ``job.log`` becomes the Slurm job's output (task 0); a request sbatch refuses is reported by :meth:`poll`.
        """
        folder = Path(job.log).parent / "slurm"
        record = folder / f"{Path(job.log).stem}.json"
        prior = _read_record(record)
        if prior is not None:
            state = job_states([prior["job_id"]]).get(prior["job_id"], {}).get("State")
            # A job that completed while no run followed it (its record has no end state yet) did its work: it
            # is collected, not submitted again. One whose end a run has seen is submitted anew (e.g. --force).
            if state in ACTIVE or (state == "COMPLETED" and "state" not in prior):
                job.handle = SlurmHandle(prior["job_id"], record)
                job.log = Path(prior["log"])
                self._followed.add(prior["job_id"])
                self.log(f"{job.label}: following Slurm job {prior['job_id']} ({state}) from an earlier run; "
                         "not submitted again")
                return
        self._submit(job, env, folder, record)

    def _submit(self, job: Any, env: dict[str, str], folder: Path, record: Path) -> None:
        import submitit

        folder.mkdir(parents=True, exist_ok=True)
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=int(self.resources["max_requeues"]))
        executor.update_parameters(**self.parameters(job, env))
        try:
            sjob = executor.submit(MixbenchCommand(self.command(job)))
        except (submitit.core.utils.FailedJobError, subprocess.CalledProcessError, OSError) as err:
            why = " ".join(str(err).split())
            Path(job.log).parent.mkdir(parents=True, exist_ok=True)
            with open(job.log, "a") as fh:
                fh.write(f"[mixbench] Slurm refused the job at submit: {why}\n")
            job.handle = SlurmHandle(None, record, refused=why)
            return
        log = Path(sjob.paths.stdout)
        atomic_write_json(record, {"job_id": sjob.job_id, "label": job.label, "argv": self.command(job),
                                   "log": str(log), "submitted": time.strftime("%Y-%m-%d %H:%M:%S")})
        job.handle, job.log = SlurmHandle(sjob.job_id, record), log
        self._followed.add(sjob.job_id)

    def parameters(self, job: Any, env: dict[str, str]) -> dict[str, Any]:
        """submitit's parameters for ``job``: the resources, its name, working dir and environment."""
        # None leaves a key out of the request (`slurm.gpus_per_task=None`: a CPU job of a GPU config)
        params: dict[str, Any] = {RESOURCES[k]: v for k, v in self.resources.items()
                                  if k in RESOURCES and v is not None}
        if "mem" in params:
            params["mem"] = f"{round(float(params['mem']) * 1024)}M"
        params["additional_parameters"] = {"chdir": os.getcwd(), **(params.get("additional_parameters") or {})}
        changed = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()) if os.environ.get(k) != v]
        # Jobs sharing a node need distinct rendezvous ports; the job id gives each its own.
        params["setup"] = [*changed, "export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))",
                           *(params.get("setup") or [])]
        params["job_name"] = "mixbench-" + re.sub(r"[^\w.-]+", "_", job.label)[:100]
        params["stderr_to_stdout"] = True
        return params

    def poll(self, job: Any) -> int | None:
        """The job's exit status once its Slurm job has ended (0: COMPLETED), else None."""
        handle: SlurmHandle = job.handle
        if handle.refused is not None:
            self.failures[job.label] = f"refused at submit: {handle.refused} (log {job.log})"
            return 2
        row = self._state(handle.job_id)
        now = time.time()
        if row is None:
            if now - handle.seen > self.unknown_timeout_s:
                return self._failed(job, "UNKNOWN", "", f"neither sacct nor squeue knows it for "
                                    f"{self.unknown_timeout_s:.0f} s")
            return None
        handle.seen, state = now, row["State"]
        if state in ACTIVE:
            handle.pending_since = (handle.pending_since or now) if state == "PENDING" else None
            if handle.pending_since and now - handle.pending_since > self.pending_timeout_s:
                self._scancel([handle.job_id])
                return self._failed(job, state, "", f"pending ({row['Reason']}) for more than "
                                    f"{self.pending_timeout_s:.0f} s; cancelled")
            return None
        self._followed.discard(handle.job_id)
        _update_record(handle.record, state=state, exit_code=row["ExitCode"])
        rc = _exit_status(state, row["ExitCode"])
        return self._failed(job, state, row["ExitCode"], row["Reason"]) if rc else 0

    def _failed(self, job: Any, state: str, exit_code: str, reason: str) -> int:
        """Name the failure (job id, state, reason, log) in ``failures`` and at the end of the job's log."""
        handle: SlurmHandle = job.handle
        why = (f"Slurm job {handle.job_id} ended {state} (exit {exit_code or '?'}, reason {reason or 'None'}); "
               f"log {job.log}")
        self.failures[job.label] = why
        try:
            with open(job.log, "a") as fh:
                fh.write(f"[mixbench] {why}\n")
        except OSError:  # the log's folder is gone: the message still reaches the caller through `failures`
            pass
        self._followed.discard(handle.job_id or "")
        return _exit_status(state, exit_code) or 1

    def _state(self, job_id: str | None) -> dict[str, str] | None:
        """The job's last read state; all followed jobs are read in one call at most every ``poll_s`` seconds."""
        if job_id is None:
            return None
        if time.time() - self._read_at >= self.poll_s or job_id not in self._states:
            self._states = job_states(self._followed | {job_id})
            self._read_at = time.time()
        return self._states.get(job_id)

    def describe(self, job: Any) -> str:
        """A short state for the progress board: ``PENDING (Resources)``, ``RUNNING``, ``refused``."""
        handle: SlurmHandle = job.handle
        if handle.refused is not None:
            return "refused"
        row = self._states.get(handle.job_id or "")
        if row is None:
            return "submitted"
        return f"{row['State']} ({row['Reason']})" if row["State"] == "PENDING" else row["State"]

    def stop(self, jobs: list[Any]) -> None:
        """Leave ``jobs`` running on the cluster and say how to follow or cancel them (``keep_on_stop``), or
        cancel them."""
        ids = [j.handle.job_id for j in jobs if j.handle is not None and j.handle.job_id]
        if not ids:
            return
        if not self.keep_on_stop:
            self.cancel(jobs)
            return
        self.log(f"left {len(ids)} Slurm job(s) running: {', '.join(ids)}. A rerun follows them instead of "
                 f"submitting again; `squeue -j {','.join(ids)}` shows them, `scancel {' '.join(ids)}` ends them")

    def cancel(self, jobs: list[Any]) -> list[str]:
        """``scancel`` the Slurm jobs of ``jobs``; returns their ids."""
        ids = [j.handle.job_id for j in jobs if j.handle is not None and j.handle.job_id]
        self._scancel(ids)
        return ids

    def _scancel(self, ids: list[str]) -> None:
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=60)
            self.log(f"cancelled Slurm job(s) {', '.join(ids)}")

    @staticmethod
    def status(root: str | Path) -> list[dict[str, str]]:
        """One row per Slurm job recorded under ``root``: label, job id, state, reason, log."""
        records = find_records(root)
        states = job_states(r["job_id"] for r in records)
        rows = []
        for r in records:
            row = states.get(r["job_id"], {"State": r.get("state", "UNKNOWN"), "Reason": ""})
            rows.append({"label": r["label"], "job_id": r["job_id"], "state": row["State"],
                         "reason": row.get("Reason", ""), "log": r["log"]})
        return rows

    def cancel_all(self, root: str | Path) -> list[str]:
        """``scancel`` every queued or running Slurm job recorded under ``root``; returns their ids."""
        ids = [r["job_id"] for r in self.status(root) if r["state"] in ACTIVE]
        self._scancel(ids)
        return ids


def _read_record(path: Path) -> dict[str, Any] | None:
    """A job record, or None when absent or unreadable (the job is then submitted anew)."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and {"job_id", "log"} <= set(entry) else None


def _update_record(path: Path, **fields: str) -> None:
    if (entry := _read_record(path)) is not None:
        atomic_write_json(path, {**entry, **fields})
