"""Mixed precision, memory layout and cuDNN autotuning for the Runner of every stage (``--amp``, ``--channels-last``).

The flags only set what mmengine's own machinery reads: ``optim_wrapper.type = 'AmpOptimWrapper'`` with its
``dtype`` and ``loss_scale`` (autocast in ``train_step`` and a ``torch.amp.GradScaler``), and
``env_cfg.cudnn_benchmark``. The chosen settings are written into the config as ``cfg.mixbench_run`` so run records
(transfer), ``linear_result.json`` and the pretraining checkpoints' ``meta['mixbench_run']`` state them.

* ``--amp`` on a GPU: bfloat16 where the GPU supports it (Ampere and newer), with no loss scaling (bf16 has fp32's
  exponent range, so gradients do not underflow); else float16 with mmengine's dynamic loss scaling.
* ``--amp`` on CPU: the run stays float32 and says so (a warning, and ``precision: fp32`` with a note in the record);
  mmengine's AmpOptimWrapper refuses to build without a GPU, and a CPU run with a silently different precision than
  asked would be worse than one that states it.
* cuDNN benchmark (autotuned convolution algorithms) on whenever a GPU runs the job; it is meaningless on CPU.
"""

from __future__ import annotations

import warnings
from typing import Any

FP32, BF16, FP16 = "fp32", "bf16", "fp16"
AMP_HELP = "mixed precision on GPU (bf16 where supported, else fp16 + loss scaling; CPU stays fp32)"


def resolve_precision(amp: bool, cuda_available: bool | None = None,
                      bf16_supported: bool | None = None) -> dict[str, Any]:
    """What ``--amp`` means on this machine: ``{'precision', 'amp_requested', 'note'}``.

    ``cuda_available`` / ``bf16_supported`` default to torch's answers; tests pass them to force the GPU branches.
    """
    import torch

    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    out: dict[str, Any] = {"precision": FP32, "amp_requested": bool(amp), "note": None}
    if not amp:
        return out
    if not cuda:
        out["note"] = "--amp ignored: no GPU, CPU runs stay fp32"
        return out
    bf16 = torch.cuda.is_bf16_supported() if bf16_supported is None else bf16_supported
    out["precision"] = BF16 if bf16 else FP16
    return out


def apply_run_settings(cfg: Any, amp: bool = False, channels_last: bool = False,
                       cuda_available: bool | None = None, bf16_supported: bool | None = None) -> dict[str, Any]:
    """Set AMP and cuDNN benchmark on an mmengine config; store and return ``cfg.mixbench_run``.

    Returns ``{'precision': 'fp32'|'bf16'|'fp16', 'amp_requested', 'note', 'loss_scale', 'channels_last',
    'cudnn_benchmark', 'device'}``. ``channels_last`` is only recorded here; the stage that supports it (pretraining)
    applies it to its model.
    """
    import torch

    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    run = resolve_precision(amp, cuda, bf16_supported)
    if run["note"]:
        warnings.warn(run["note"], stacklevel=2)
    run["loss_scale"] = None
    if run["precision"] != FP32:
        ow = cfg.optim_wrapper
        if ow.get("type", "OptimWrapper") not in ("OptimWrapper", "AmpOptimWrapper"):
            raise ValueError(f"--amp: optim_wrapper type {ow['type']!r} is not mmengine's OptimWrapper; cannot make "
                             "it an AmpOptimWrapper")
        ow.type = "AmpOptimWrapper"
        ow.dtype = "bfloat16" if run["precision"] == BF16 else "float16"
        # bf16 needs no scaling; mmengine always builds a GradScaler, so it is built disabled (a pass-through)
        ow.loss_scale = dict(enabled=False) if run["precision"] == BF16 else "dynamic"
        run["loss_scale"] = "none" if run["precision"] == BF16 else "dynamic"
    env = dict(cfg.get("env_cfg") or {})
    env["cudnn_benchmark"] = bool(cuda)
    cfg.env_cfg = env
    run["cudnn_benchmark"] = bool(cuda)
    run["channels_last"] = bool(channels_last)
    run["device"] = "cuda" if cuda else "cpu"
    cfg.mixbench_run = dict(run)
    return run
