"""Child processes that die with their parent (issue 12, finding 7).

Killing ``mixbench pipeline`` used to leave its pretraining and transfer jobs running as orphans that a rerun
then raced (same work dirs, same records). Each job now starts in its own process group (so a job's own children,
e.g. torchrun's workers, go with it), and :func:`stop_children_on_exit` turns SIGINT/SIGTERM into an exception in
the parent and stops every running group before it propagates: SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Interrupted", "start_in_own_group", "stop_groups", "stop_children_on_exit"]


class Interrupted(KeyboardInterrupt):
    """The parent received SIGINT or SIGTERM; raised so the ``finally`` clauses that stop the children run."""


def start_in_own_group(argv: list[str], **popen: Any) -> subprocess.Popen:
    """``subprocess.Popen`` in a new session: the child and everything it starts form one killable group."""
    return subprocess.Popen(argv, start_new_session=True, **popen)


def stop_groups(procs: Iterable[subprocess.Popen], grace: float = 10.0) -> list[int]:
    """SIGTERM every still-running process group, wait up to ``grace`` seconds, SIGKILL what is left.

    Returns the pids that were stopped.
    """
    alive = [p for p in procs if p is not None and p.poll() is None]
    for p in alive:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in alive:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait()
    return [p.pid for p in alive]


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)  # start_new_session: the group id is the child's pid
    except ProcessLookupError:
        pass


@contextmanager
def stop_children_on_exit(running: Callable[[], Iterable[subprocess.Popen]], log: Callable[[str], None] = print,
                          grace: float = 10.0) -> Iterator[None]:
    """Within the block SIGINT/SIGTERM raise :class:`Interrupted`; on any exception the ``running()`` children's
    groups are stopped before it propagates. Handlers are restored afterwards (main thread only: Python delivers
    signals there; elsewhere the block only stops children on exceptions)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted(f"received {signal.Signals(signum).name}")

    import threading

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield
    except BaseException as err:
        procs = [p for p in running() if p is not None and p.poll() is None]
        if procs:
            log(f"{type(err).__name__}: {err}; stopping {len(procs)} running job(s) "
                f"(pids {', '.join(str(p.pid) for p in procs)})")
            stop_groups(procs, grace)
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
