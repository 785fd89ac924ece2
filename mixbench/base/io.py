"""Atomic file writes and content hashes shared by every stage (nothing already written is lost)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["DataError", "atomic_torch_save", "atomic_write", "atomic_write_json", "atomic_write_text", "current_umask",
           "os_error_message", "sha256_file", "write_error"]


class DataError(ValueError):
    """A data file (image, annotation XML/JSON) cannot be used; the message starts with its path."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through a temporary file in the same folder, then ``os.replace`` it into place.

    A reader sees either the old file or the complete new one, never a partial write. The file gets the mode a
    plain ``open(path, 'w')`` would give (0666 minus the umask): ``mkstemp`` creates 0600 for its own safety.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_error(err, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename in (None, tmp):  # not an error of another file the callback read
            raise write_error(err, path) from None
        raise
    return path


def write_error(err: OSError, path: str | Path, kept: str = "nothing was written") -> OSError:
    """``err`` re-addressed to ``path`` (the file the user named, not a temporary), saying what was kept.

    The errno and so the exception class stay (``OSError(errno, ...)`` picks ``PermissionError`` etc.).
    """
    why = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        why += " (the disk is full)"
    return OSError(err.errno, f"{why}; {kept}", str(path))


def os_error_message(err: OSError) -> str:
    """One line for the user: ``<path>: <reason>`` (``str(err)`` would add ``[Errno N]`` and quotes)."""
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


def current_umask() -> int:
    """The process umask (POSIX offers no read-only query: set and restore it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    import torch  # here, so the data generator and table writer do not pay torch's import time

    # Serialised in memory first: torch's zip writer turns a failing file write (a full disk) into
    # RuntimeError('unexpected pos'), losing the errno; a plain write of the bytes keeps it.
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write(path, lambda f: f.write(buf.getbuffer()))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
