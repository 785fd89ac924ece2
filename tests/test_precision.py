"""``--amp`` / cuDNN benchmark settings (mixbench.base.precision), GPU branches forced on CPU."""

from __future__ import annotations

import pytest
from mmengine.config import Config

from mixbench.base.precision import apply_run_settings, resolve_precision


def _cfg() -> Config:
    return Config(dict(optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1)),
                       env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl"))))


def test_bf16_gpu_uses_amp_without_loss_scaling() -> None:
    cfg = _cfg()
    run = apply_run_settings(cfg, amp=True, cuda_available=True, bf16_supported=True)
    assert run["precision"] == "bf16" and run["loss_scale"] == "none" and run["cudnn_benchmark"]
    assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.optim_wrapper.dtype == "bfloat16"
    assert cfg.optim_wrapper.loss_scale == dict(enabled=False)
    assert cfg.optim_wrapper.optimizer.lr == 0.1 and cfg.env_cfg.dist_cfg.backend == "nccl"  # rest untouched
    assert cfg.env_cfg.cudnn_benchmark is True and cfg.mixbench_run == run


def test_fp16_gpu_uses_dynamic_loss_scaling() -> None:
    cfg = _cfg()
    run = apply_run_settings(cfg, amp=True, cuda_available=True, bf16_supported=False)
    assert run["precision"] == "fp16" and cfg.optim_wrapper.dtype == "float16"
    assert cfg.optim_wrapper.loss_scale == "dynamic" == run["loss_scale"]


def test_cpu_stays_fp32_and_says_so() -> None:
    cfg = _cfg()
    with pytest.warns(UserWarning, match="--amp ignored: no GPU, CPU runs stay fp32"):
        run = apply_run_settings(cfg, amp=True, channels_last=True, cuda_available=False)
    assert run["precision"] == "fp32" and run["amp_requested"] and run["channels_last"]
    assert cfg.optim_wrapper.type == "OptimWrapper" and cfg.env_cfg.cudnn_benchmark is False
    assert resolve_precision(False, cuda_available=True) == {"precision": "fp32", "amp_requested": False,
                                                            "note": None}


def test_amp_refuses_a_custom_optim_wrapper() -> None:
    cfg = _cfg()
    cfg.optim_wrapper.type = "MyWrapper"
    with pytest.raises(ValueError, match="MyWrapper"):
        apply_run_settings(cfg, amp=True, cuda_available=True, bf16_supported=True)


def test_amp_optim_wrapper_builds_from_these_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """mmengine's own AmpOptimWrapper accepts exactly what we set (it asserts a GPU, faked here; no step taken)."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.optim.optimizer import amp_optimizer_wrapper

    monkeypatch.setattr(amp_optimizer_wrapper, "is_cuda_available", lambda: True)

    class Scaler:  # records the arguments (torch's GradScaler disables itself without a GPU)
        def __init__(self, enabled: bool = True, **kwargs) -> None:
            self.enabled = enabled

        def is_enabled(self) -> bool:
            return self.enabled

    monkeypatch.setattr(amp_optimizer_wrapper, "GradScaler", Scaler)
    for bf16, scaler_on in ((True, False), (False, True)):
        cfg = _cfg()
        apply_run_settings(cfg, amp=True, cuda_available=True, bf16_supported=bf16)
        ow = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
        assert type(ow).__name__ == "AmpOptimWrapper"
        assert ow.cast_dtype == (torch.bfloat16 if bf16 else torch.float16)
        assert ow.loss_scaler.is_enabled() is scaler_on
