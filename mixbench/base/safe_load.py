"""Safe checkpoint loading for every stage (torch >= 2.6, ``weights_only=True`` only).

Two jobs:

* :func:`safe_torch_load` reads any user-supplied file with ``weights_only=True`` and turns torch's
  ``UnpicklingError`` into a :class:`UnsafeCheckpointError` that names the file and the refused globals.
  A file whose pickle would import or call code is refused; the code never runs.
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
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["UnsafeCheckpointError", "allow_mmengine_checkpoints", "safe_torch_load"]

_INSTALLED = False


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint was refused because loading it would need pickled code or unknown classes."""


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
        FileNotFoundError: the file does not exist.
        UnsafeCheckpointError: the pickle references globals outside torch's safe set (plus the mmengine data
            classes of :func:`allow_mmengine_checkpoints`); nothing from the file was executed.
        ValueError: the file is not a torch checkpoint at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
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
            f"{path}: refused to load: unpickling it would need code or classes outside the weights-only safe set "
            f"({detail}). mixbench only loads checkpoints with weights_only=True; nothing from the file was run. "
            "Re-save the weights as a plain state_dict of tensors (torch.save(model.state_dict(), ...))."
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: not a readable torch checkpoint ({str(err).splitlines()[0]})") from None
