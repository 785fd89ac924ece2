"""Atomic file writes and content hashes shared by every stage (nothing already written is lost)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["DataError", "atomic_torch_save", "atomic_write", "atomic_write_json", "atomic_write_text", "current_umask",
           "sha256_file"]


class DataError(ValueError):
    """A data file (image, annotation XML/JSON) cannot be used; the message starts with its path."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through a temporary file in the same folder, then ``os.replace`` it into place.

    A reader sees either the old file or the complete new one, never a partial write. The file gets the mode a
    plain ``open(path, 'w')`` would give (0666 minus the umask): ``mkstemp`` creates 0600 for its own safety.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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

    return atomic_write(path, lambda f: torch.save(obj, f))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
