"""Child processes that die with their parent, and SIGINT/SIGTERM as an exception the caller can clean up after.

A job runs under a small supervisor, ``python -m mixbench.base.procs PARENT_PID -- ARGV``, that leads a process
group of its own and asks the kernel for SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``). The kernel
tells only the direct child of a parent's death, and a job may start children of its own (torchrun's workers, data
loader workers), so the supervisor passes the signal to the whole group: SIGTERM, a grace period, then SIGKILL.
Every process of the group carries the job's token in its environment (``MIXBENCH_JOB_TOKEN``), so a later run
can find what is left of a job by its recorded group id without mistaking an unrelated process for it.

Linux only (``prctl`` and ``/proc``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Interrupted", "JOB_TOKEN_ENV", "group_members", "raise_on_signals", "signal_group", "start_in_own_group",
           "stop_group", "stop_groups"]

JOB_TOKEN_ENV = "MIXBENCH_JOB_TOKEN"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class Interrupted(KeyboardInterrupt):
    """The process received SIGINT or SIGTERM; raised so that ``finally`` clauses (stopping children, removing
    partial files) run."""


def start_in_own_group(argv: list[str], token: str | None = None, **popen: Any) -> subprocess.Popen:
    """Start ``argv`` under a supervisor in a new session: one group that ends when this process ends.

    ``token`` (default: a fresh one) goes into the environment of every process of the group. The returned
    process is the supervisor; its pid is the group id and its exit status is the job's (128 + N when the job
    was killed by signal N). The kernel signals the death of the thread that started it, so start jobs from a
    thread that outlives them (the main thread).
    """
    env = dict(popen.pop("env", None) or os.environ)
    env[JOB_TOKEN_ENV] = token or uuid.uuid4().hex
    cmd = [sys.executable, "-m", "mixbench.base.procs", str(os.getpid()), "--", *argv]
    return subprocess.Popen(cmd, start_new_session=True, env=env, **popen)


def stop_groups(procs: Iterable[subprocess.Popen], grace: float = 10.0) -> list[int]:
    """SIGTERM every still-running process group, wait up to ``grace`` seconds, SIGKILL what is left.

    Returns the pids that were stopped.
    """
    alive = [p for p in procs if p is not None and p.poll() is None]
    for p in alive:
        signal_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in alive:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(p.pid, signal.SIGKILL)
            p.wait()
    return [p.pid for p in alive]


def signal_group(pgid: int, sig: int) -> None:
    """``os.killpg``, quiet when the group has already ended."""
    try:
        os.killpg(pgid, sig)  # start_new_session: the group id is the leader's pid
    except ProcessLookupError:
        pass


def group_members(pgid: int, token: str | None = None) -> list[int]:
    """Live (not zombie) processes of group ``pgid``; with ``token``, only those started with that job token."""
    mark = f"{JOB_TOKEN_ENV}={token}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
            if int(fields[2]) != pgid or fields[0] == b"Z":
                continue
            if token is not None:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if mark not in f.read().split(b"\0"):
                        continue
        except (OSError, IndexError, ValueError):  # ended meanwhile, or not ours to read
            continue
        pids.append(int(name))
    return pids


def stop_group(pgid: int, token: str, grace: float = 10.0) -> list[int]:
    """Stop what is left of the job group ``pgid`` started with ``token`` (SIGTERM, ``grace``, SIGKILL).

    Returns the pids it found; empty when nothing of that job is alive (a reused group id is left alone).
    """
    found = group_members(pgid, token)
    if not found:
        return []
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_members(pgid, token) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_members(pgid, token):
        signal_group(pgid, signal.SIGKILL)
    return found


@contextmanager
def raise_on_signals() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM raise :class:`Interrupted`; the handlers are restored afterwards.

    Only in the main thread (Python delivers signals there); elsewhere the block changes nothing.
    """

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted(f"received {signal.Signals(signum).name}")

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# ----------------------------------------------------------------------------------------------- the supervisor
def _set_parent_death_signal(sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")


def _stop_own_group(child: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM the group (this process ignores it), wait for the job, then SIGKILL the group; never returns."""
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    if child is not None:
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    os.killpg(0, signal.SIGKILL)  # this process included
    os._exit(128 + signal.SIGKILL)


def supervise(parent: int, argv: list[str], grace: float = 10.0) -> int:
    """Run ``argv`` and return its exit status; stop the whole group when ``parent`` dies or a signal asks to."""
    stop: list[str] = []

    def request_stop(signum: int, frame: Any) -> None:
        stop.append(signal.Signals(signum).name)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, request_stop)
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the kernel was asked to tell us
        stop.append("parent gone")
    child = None if stop else subprocess.Popen(argv)
    # Polled rather than waited on: a signal handler cannot safely wait on the child itself.
    while not stop and child.poll() is None:
        time.sleep(0.1)
    if stop:
        print(f"mixbench: {stop[0]} (parent pid {parent}); stopping this job's process group", file=sys.stderr,
              flush=True)
        _stop_own_group(child, grace)
    rc = child.returncode
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(supervise(int(sys.argv[1]), sys.argv[3:]))
