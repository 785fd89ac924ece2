"""One run per work dir: an advisory ``flock`` on ``<work_dir>/.lock``.

Two runs in one work dir would overwrite each other's checkpoints and record. The lock is taken with
``fcntl.flock``, which the kernel releases when the holder exits in any way (kill -9 included), so a lock left by a
dead run is never mistaken for a live one: the file then only tells who held it last, and the next run says it
takes over a stale lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["WorkDirError", "WorkDirLockedError", "work_dir_lock"]

LOCK_NAME = ".lock"


class WorkDirError(RuntimeError):
    """The work dir cannot be used (read-only, full, not a folder); the message names the path and the problem."""


class WorkDirLockedError(WorkDirError):
    """Another live process holds the work dir; the message names it and the holder."""


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def work_dir_lock(work_dir: str | Path, wait: float = 0.0, log=print) -> Iterator[Path]:
    """Hold ``work_dir/.lock`` for the duration of the block.

    Args:
        work_dir: the run's folder (created if absent).
        wait: seconds to wait for another holder to finish before refusing (0: refuse at once).
        log: where the stale-lock notice goes.

    Raises:
        WorkDirLockedError: another live process holds it (after ``wait`` seconds).
        WorkDirError: the folder or its lock file cannot be created or written.
    """
    path = Path(work_dir) / LOCK_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise WorkDirError(f"{work_dir}: cannot use this work dir: {err.strerror or err}") from None
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    h = _holder(path)
                    raise WorkDirLockedError(
                        f"{work_dir}: another run holds this work dir (pid {h.get('pid', '?')} on "
                        f"{h.get('host', '?')}, since {h.get('since', '?')}: {h.get('what', '?')}); wait for it to "
                        "finish or stop it. Two runs in one work dir would overwrite each other's checkpoints."
                    ) from None
                time.sleep(0.5)
            except OSError as err:  # e.g. a file system without flock
                raise WorkDirError(f"{path}: cannot lock: {err.strerror or err}") from None
        stale = _holder(path)
        if stale.get("pid"):
            log(f"{work_dir}: taking over a stale lock (pid {stale['pid']} on {stale.get('host', '?')} "
                f"since {stale.get('since', '?')} exited without releasing it)")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "what": " ".join(sys.argv)[:300]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as err:
            raise WorkDirError(f"{path}: cannot write the lock file: {err.strerror or err}") from None
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released cleanly: the next run sees no holder
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
