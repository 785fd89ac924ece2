"""Live progress of the pipeline's jobs, read from their mmengine logs: one line per running job.

Each job is a ``mixbench`` sub-process whose mmengine logger writes lines such as
``Epoch(train) [1][ 40/80]  lr: ... eta: 0:01:10 ...`` or ``Epoch(test) [ 20/100] eta: ...`` to its log file.
We show the newest such line's position and ETA per job. Parsing the log is the one interface every stage already
has (mmengine's own format); no job needs to know it is watched.

A job whose executor reports a state of its own (a Slurm job: ``PENDING (Priority)``, ``RUNNING``) shows that
state before its progress; the log of a Slurm job is its stdout, which the job writes from the moment it runs.

On a terminal the block of lines is redrawn in place; otherwise (CI logs, pipes) a plain status line per job is
printed when its progress changed, at most every ``plain_every`` seconds, so logs stay short.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

__all__ = ["ProgressBoard", "Running", "parse_progress"]

# A running job as the board gets it: (label, log, start time) and, optionally, its executor's state (or None).
Running = tuple[str, Path, float] | tuple[str, Path, float, str | None]

_TRAIN = re.compile(r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]")
_ITER_TRAIN = re.compile(r"Iter\(train\)\s*\[\s*(\d+)/(\d+)\]")
_EVAL = re.compile(r"Epoch\((test|val)\)\s*(?:\[\d+\])?\[\s*(\d+)/(\d+)\]")
_ETA = re.compile(r"eta: ([0-9:]+(?: day[s]?, [0-9:]+)?)")


@dataclass
class Progress:
    stage: str  # 'train' | 'test' | 'val'
    epoch: int | None
    it: int
    total: int
    eta: str | None

    def __str__(self) -> str:
        where = f"epoch {self.epoch} " if self.epoch is not None else ""
        eta = f", eta {self.eta}" if self.eta else ""
        return f"{self.stage} {where}iter {self.it}/{self.total}{eta}"


def parse_progress(text: str) -> Progress | None:
    """The newest mmengine progress line in ``text`` (a log's tail), or None before the first one."""
    for line in reversed(text.splitlines()):
        eta = m.group(1) if (m := _ETA.search(line)) else None
        if m := _TRAIN.search(line):
            return Progress("train", int(m.group(1)), int(m.group(2)), int(m.group(3)), eta)
        if m := _ITER_TRAIN.search(line):
            return Progress("train", None, int(m.group(1)), int(m.group(2)), eta)
        if m := _EVAL.search(line):
            return Progress(m.group(1), None, int(m.group(2)), int(m.group(3)), eta)
    return None


def _tail(path: Path, size: int = 16384) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class ProgressBoard:
    """Shows running jobs (label, executor state, mmengine progress, elapsed) and a count of finished ones.

    Args:
        stream: where to write (default stdout); redrawn in place only if it is a terminal.
        plain_every: seconds between plain status lines for a job whose progress changed (non-terminal output).
    """

    def __init__(self, stream: TextIO | None = None, plain_every: float = 30.0) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.plain_every = plain_every
        self._drawn = 0
        self._last_plain: dict[str, tuple[float, str]] = {}

    def lines(self, running: list[Running], done: int, failed: int, pending: int) -> list[str]:
        now = time.time()
        out = []
        for label, log, started, *state in running:
            prog = parse_progress(_tail(log))
            shown = ", ".join(str(part) for part in (*state, prog) if part) or "starting"
            out.append(f"  {label}: {shown} ({now - started:.0f} s)")
        out.append(f"  jobs: {len(running)} running, {pending} waiting, {done} done, {failed} failed")
        return out

    def update(self, running: list[Running], done: int, failed: int, pending: int) -> None:
        lines = self.lines(running, done, failed, pending)
        if self.tty:
            self.clear()
            self.stream.write("\n".join(lines) + "\n")
            self._drawn = len(lines)
        else:
            now = time.time()
            for line in lines[:-1]:
                label, _, status = line.strip().partition(": ")
                last_t, last_status = self._last_plain.get(label, (0.0, ""))
                status_core = status.rsplit(" (", 1)[0]
                if status_core != last_status and now - last_t >= self.plain_every:
                    self.stream.write(f"[progress {time.strftime('%H:%M:%S')}] {label}: {status}\n")
                    self._last_plain[label] = (now, status_core)
        self.stream.flush()

    def clear(self) -> None:
        """Erase the drawn block (terminal only), so a normal log line can be printed above it."""
        if self.tty and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0
