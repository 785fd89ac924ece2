"""The one run lifecycle of every stage that trains with mmengine's Runner: pretraining, linear evaluation, transfer.

    world_size = init_launcher(launcher)              # processes first: each knows its rank before taking the lock
    cfg = load_config(config, cfg_options)            # the file, with --cfg-options checked against it
    ...                                               # the stage's own additions (checkpoint, data root, model)
    apply_run(cfg, work_dir=..., launcher=..., amp=...)  # schedule check, precision, CPU DDP, guards, seed
    result = run_runner(cfg, body, hooks=...)         # the Runner; rank 0 holds the work dir while body runs

``body`` is what the stage does with the built Runner (train; train and test; train and read the validation
metrics). Only :func:`build_runner` builds a Runner, so every stage's run goes through this module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from mmengine.config import Config

from mixbench.base.config import merge_cfg_options
from mixbench.base.dist import rank
from mixbench.base.hooks import add_divergence_and_save_guards
from mixbench.base.launch import LAUNCHERS, init_launcher, use_cpu_ddp
from mixbench.base.precision import apply_run_settings

__all__ = ["apply_run", "build_runner", "check_schedule", "init_launcher", "load_config", "run_runner"]

T = TypeVar("T")


def load_config(config: str | os.PathLike, cfg_options: dict[str, Any] | None = None) -> Config:
    """Read ``config`` and merge ``cfg_options`` (every key checked against the config, see
    :func:`mixbench.base.config.merge_cfg_options`)."""
    if not Path(config).is_file():
        raise FileNotFoundError(f"{config}: config file not found")
    cfg = Config.fromfile(str(config))
    merge_cfg_options(cfg, cfg_options)
    return cfg


def check_schedule(cfg: Any) -> None:
    """Refuse a schedule that trains no iteration: its untrained weights would be reported as a result."""
    train = cfg.get("train_cfg") or {}
    name = getattr(cfg, "filename", None) or "config"
    for key, unit in (("max_epochs", "epoch"), ("max_iters", "iteration")):
        value = train.get(key)
        if key in train and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1):
            raise ValueError(f"{name}: train_cfg.{key}={value!r}: a run must train at least one {unit}")


def apply_run(cfg: Any, *, work_dir: str | os.PathLike, launcher: str = "none", resume: bool = False,
              seed: int | None = None, amp: bool = False, channels_last: bool = False) -> dict[str, Any]:
    """Put the command line's run settings into ``cfg``; returns ``cfg.mixbench_run`` (precision and device).

    ``resume``: continue from ``work_dir/last_checkpoint`` (mmengine's auto-resume). ``seed``: mmengine's
    ``randomness.seed`` (None keeps the config's). ``amp``/``channels_last``: :mod:`mixbench.base.precision`.
    Every run stops at a non-finite loss and saves checkpoints that cannot lose the last good one
    (:func:`mixbench.base.hooks.add_divergence_and_save_guards`).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {LAUNCHERS}, got {launcher!r}")
    check_schedule(cfg)
    cfg.launcher = launcher
    cfg.work_dir = str(work_dir)
    if resume:
        cfg.resume = True
        cfg.load_from = None
    if seed is not None:
        cfg.randomness = dict(seed=int(seed), deterministic=False)
    run = apply_run_settings(cfg, amp=amp, channels_last=channels_last)
    if launcher != "none" and not torch.cuda.is_available():
        use_cpu_ddp(cfg)
        if cfg.get("sync_bn"):
            warnings.warn("SyncBN needs GPUs; training on CPU without it", stacklevel=2)
        cfg.sync_bn = None
    add_divergence_and_save_guards(cfg)
    return run


def build_runner(cfg: Any, build_model: Callable[[Any], torch.nn.Module] | None = None) -> Any:
    """mmengine's Runner for ``cfg``.

    ``build_model`` (model config -> module) builds the model in place of mmengine's registry, at the moment the
    Runner would (after it seeded the run), for a model that holds a part the caller built (linear evaluation's
    frozen extractor).
    """
    from mmengine.runner import Runner

    if build_model is None:
        return Runner.from_cfg(cfg)

    class CallerModelRunner(Runner):
        def build_model(self, model: Any) -> torch.nn.Module:
            return build_model(model)

    return CallerModelRunner.from_cfg(cfg)


def run_runner(cfg: Any, body: Callable[[Any], T], *, hooks: Sequence[tuple[Any, str]] = (),
               build_model: Callable[[Any], torch.nn.Module] | None = None) -> T:
    """Build the Runner, register ``hooks`` ((hook, priority) pairs) and return ``body(runner)``.

    Rank 0 holds ``work_dir``'s lock from before the Runner is built until ``body`` returns, so a second run on the
    same work dir is refused before it writes anything there (:func:`mixbench.base.locks.work_dir_lock`).
    """
    from mixbench.base.locks import work_dir_lock
    from mixbench.base.safe_load import allow_mmengine_checkpoints

    allow_mmengine_checkpoints()  # the Runner resumes its own checkpoints under weights_only loading
    if cfg.get("cpu_threads") and not torch.cuda.is_available():
        torch.set_num_threads(int(cfg.cpu_threads))

    def run() -> T:
        runner = build_runner(cfg, build_model)
        for hook, priority in hooks:
            runner.register_hook(hook, priority=priority)
        return body(runner)

    if rank() != 0:  # rank 0 holds the work dir for every process of the run
        return run()
    with work_dir_lock(cfg.work_dir):
        return run()
