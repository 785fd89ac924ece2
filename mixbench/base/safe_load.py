"""Safe checkpoint loading for every stage (torch >= 2.6, ``weights_only=True`` only).

Three jobs:

* :func:`safe_torch_load` reads any user-supplied file with ``weights_only=True`` and turns torch's
  ``UnpicklingError`` into a :class:`UnsafeCheckpointError` that names the file and the refused globals.
  A file whose pickle would import or call code is refused; the code never runs.
* :func:`verify_checkpoint_file` checks a zip checkpoint's CRC-32s first, so a damaged file is called corrupt
  instead of loading with wrong weights (or NaNs that look like a diverged run).
* :func:`allow_mmengine_checkpoints` lets mmengine's Runner resume its *own* checkpoints under
  ``weights_only=True`` by allow-listing exactly the classes mmengine 0.10.7 writes (measured with
  ``torch.serialization.get_unsafe_globals_in_checkpoint`` on a real Runner checkpoint).

mmengine's ``HistoryBuffer.__getstate__`` also pickles its class-level statistics functions as
``getattr(HistoryBuffer, 'min')``. Allow-listing ``builtins.getattr`` would re-open arbitrary code execution
(``getattr`` chains reach ``object.__subclasses__``), so instead we stop pickling those functions: they are
class attributes that ``HistoryBuffer.__setstate__`` re-registers on load, so nothing is lost. Checkpoints
written by an unpatched mmengine still carry ``getattr`` and are refused with a message saying so.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CorruptCheckpointError", "UnsafeCheckpointError", "allow_mmengine_checkpoints", "has_checksums",
           "safe_torch_load", "verify_checkpoint_file"]

_INSTALLED = False


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint was refused because loading it would need pickled code or unknown classes."""


class CorruptCheckpointError(ValueError):
    """A checkpoint file is damaged (empty, broken zip structure, or a record whose CRC-32 does not match)."""


_ZIP_MAGIC = b"PK\x03\x04"


def _has_crcs(zf: zipfile.ZipFile) -> bool:
    # torch can be told not to compute them (torch.serialization.config.save.compute_crc32): all stay 0
    return any(r.CRC != 0 for r in zf.infolist() if r.file_size)


def has_checksums(path: str | Path) -> bool:
    """Whether ``path`` is a zip checkpoint with CRC-32s, i.e. one :func:`verify_checkpoint_file` can verify."""
    try:
        with zipfile.ZipFile(path) as zf:
            return _has_crcs(zf)
    except (zipfile.BadZipFile, OSError):
        return False


def verify_checkpoint_file(path: str | Path) -> bool:
    """Check every record of a torch zip checkpoint against its stored CRC-32, before any tensor is read.

    torch's own reader does not check them, so a damaged file loads with wrong weights. Returns True when the
    file was verified, False when it cannot be: a legacy (non-zip, PyTorch < 1.6) file, or a zip written
    without checksums (every CRC-32 zero), has nothing to check against.

    Raises:
        FileNotFoundError, IsADirectoryError: ``path`` is not a file.
        CorruptCheckpointError: an empty file, a damaged zip structure or a CRC-32 mismatch (names the record).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(len(_ZIP_MAGIC))
    if not head:
        raise CorruptCheckpointError(f"{path}: corrupt file: it is empty (0 bytes)")
    if head != _ZIP_MAGIC:
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            if not _has_crcs(zf):
                return False
            bad = zf.testzip()  # reads every record and compares its CRC-32
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise CorruptCheckpointError(f"{path}: corrupt file: its zip structure is damaged ({err})") from None
    if bad is not None:
        raise CorruptCheckpointError(
            f"{path}: corrupt file: record {bad!r} does not match its stored CRC-32 (the file was damaged after it "
            "was written); copy or download it again"
        )
    return True


def _numpy_globals() -> list[Any]:
    # numpy >= 2 moved the pickling helpers to numpy._core; numpy 1.x keeps them in numpy.core.
    core = getattr(np, "_core", None) or np.core
    return [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
            *{type(np.dtype(t)) for t in ("f8", "f4", "i8", "i4", "u1", "b1")}]


def _history_buffer_getstate(self: Any) -> dict:
    state = dict(self.__dict__)
    state.pop("statistics_methods", None)  # class-level functions, re-registered by __setstate__
    return state


def allow_mmengine_checkpoints() -> None:
    """Allow-list the classes mmengine saves in its checkpoints (idempotent, process-wide).

    Call before building an mmengine Runner that saves or resumes. Only data classes are allowed:
    ``HistoryBuffer`` (message hub logs) and the numpy array/scalar reconstructors it stores.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.logging.history_buffer import HistoryBuffer

    HistoryBuffer.__getstate__ = _history_buffer_getstate
    torch.serialization.add_safe_globals([HistoryBuffer, *_numpy_globals()])
    _INSTALLED = True


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint with ``weights_only=True``; refuse anything that needs code to unpickle.

    Args:
        path: checkpoint file (``.pth``/``.pt``/``.pkl`` written by ``torch.save``).
        map_location: where tensors go; CPU by default.

    Raises:
        FileNotFoundError, IsADirectoryError: the path is not a file.
        CorruptCheckpointError: the file is damaged (:func:`verify_checkpoint_file`); checked before loading.
        UnsafeCheckpointError: the pickle references globals outside torch's safe set (plus the mmengine data
            classes of :func:`allow_mmengine_checkpoints`); nothing from the file was executed.
        ValueError: the file is not a torch checkpoint at all.
    """
    path = Path(path)
    verify_checkpoint_file(path)
    allow_mmengine_checkpoints()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            refused = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:  # legacy (non-zip) files cannot be scanned; the original message still says why
            refused = []
        detail = f"refused globals: {', '.join(refused)}" if refused else str(err).splitlines()[0]
        raise UnsafeCheckpointError(
            f"{path}: refused: unpickling it would need code or classes outside the weights-only safe set "
            f"({detail}). mixbench only loads checkpoints with weights_only=True; nothing from the file was run. "
            "Re-save the weights as a plain state_dict of tensors (torch.save(model.state_dict(), ...))."
        ) from None
    except (RuntimeError, EOFError, IndexError, struct.error) as err:
        raise ValueError(f"{path}: not a readable torch checkpoint ({str(err).splitlines()[0]})") from None
