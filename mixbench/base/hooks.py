"""mmengine hooks every training stage (pretraining, linear eval, transfer) runs with, so no run can end in a
number computed from NaN weights or leave nothing to resume.

``FiniteLossHook`` stops training at the first iteration whose loss is NaN or inf. mmengine 0.10 has no such hook
(mmdet's ``CheckInvalidLossHook`` checks every 50 iterations, names no iteration, and pretraining must not import
mmdet), so it is written here.

``SafeCheckpointHook`` is mmengine's ``CheckpointHook`` with the save order changed: mmengine deletes the oldest
checkpoint *before* writing the new one and writes in place, so a kill (or a full disk) during the save of
``epoch_N.pth`` with ``max_keep_ckpts=1`` leaves no complete checkpoint to resume from. Here the new checkpoint is
written to a hidden temporary file, renamed into place, ``last_checkpoint`` is then replaced atomically, and only
then are old checkpoints deleted. A failed save (a full disk) removes its partial file, which would otherwise hold
the space a resumed run needs, and says so in one line.

Both register in mmengine's ``HOOKS`` registry (mmdet's registry finds them through its parent);
:func:`add_divergence_and_save_guards` puts them into a config before the Runner is built.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from mixbench.base.io import atomic_write_text, write_error


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the message names the work dir, epoch and iteration."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` at the first iteration whose ``loss`` (or any logged loss) is not finite,
    and at the end of an epoch or before a checkpoint save when a weight is.

    The weights are checked too because the loss of an iteration is computed before its optimizer step: the step
    that blows the weights up to inf/NaN still logs a finite loss (measured: MoCo at lr 1e6 logged loss 2.72 and
    saved NaN weights). Runs before every other hook of the same event (priority ``HIGHEST``), so no checkpoint
    and no validation sees the diverged weights.
    """

    priority = "HIGHEST"

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: dict | None = None) -> None:
        bad = {k: v for k, v in (outputs or {}).items() if "loss" in k and not _finite(v)}
        if bad:
            values = ", ".join(f"{k}={_scalar(v)}" for k, v in bad.items())
            raise NonFiniteLossError(
                f"{runner.work_dir}: training diverged: {values} at iteration {runner.iter + 1} "
                f"(epoch {runner.epoch + 1}, batch {batch_idx + 1}); stopped before saving it. Lower the lr or check "
                "the data; no checkpoint of this epoch was written."
            )


    def after_train_epoch(self, runner) -> None:
        self._check_weights(runner, _model_state(runner.model), "at the end of")

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        self._check_weights(runner, checkpoint.get("state_dict", {}), "in the checkpoint of")

    @staticmethod
    def _check_weights(runner, state: dict, where: str) -> None:
        bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and not _finite(v)]
        if bad:
            raise NonFiniteLossError(
                f"{runner.work_dir}: training diverged: {len(bad)} weights hold NaN or inf (e.g. "
                f"{', '.join(bad[:3])}) {where} epoch {runner.epoch + 1} (iteration {runner.iter}); stopped before "
                "saving them. Lower the lr or check the data."
            )


def _model_state(model: torch.nn.Module) -> dict:
    from mmengine.model import is_model_wrapper

    return (model.module if is_model_wrapper(model) else model).state_dict()


def _finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value.detach()).all())
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return True


def _scalar(value: Any) -> str:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return f"{value.item()}"
    return str(value)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose saves cannot lose the last good checkpoint (write, rename, then delete old ones).

    Same arguments as mmengine's ``CheckpointHook``. Other storage backends than the local disk keep mmengine's
    behaviour (a rename is what makes the local write atomic).
    """

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        # Bookkeeping first, as mmengine does, so the saved message hub carries the kept ids; deletion last.
        drop = self._outdated(runner, step)
        ckpt_filename = self.filename_tmpl.format(step)
        final = Path(self.out_dir) / ckpt_filename
        tmp_name = f".{ckpt_filename}.partial"  # not *.pth: never taken for a checkpoint by a glob or a resume
        self.last_ckpt = str(final)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        tmp = Path(self.out_dir) / tmp_name
        try:
            runner.save_checkpoint(self.out_dir, tmp_name, self.file_client_args, save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                                   backend_args=self.backend_args, **self.args)
            if not is_main_process():
                return
            with open(tmp, "rb") as f:  # on disk before the rename makes it the checkpoint
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException as err:
            tmp.unlink(missing_ok=True)  # a partial file would hold the space a rerun needs
            if isinstance(err, OSError):
                raise write_error(err, final, "the partial file was removed, the last complete checkpoint is "
                                  "kept for --resume") from None
            raise
        atomic_write_text(Path(runner.work_dir) / "last_checkpoint", self.last_ckpt)
        for old in drop:  # only now that the new checkpoint is complete
            (Path(self.out_dir) / self.filename_tmpl.format(old)).unlink(missing_ok=True)

    def _outdated(self, runner, step: int) -> list[int]:
        """Record ``step`` as kept; return the steps beyond ``max_keep_ckpts`` to delete after the save."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return []
        drop = []
        while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:  # before append: mmengine's deque has a maxlen
            drop.append(self.keep_ckpt_ids.popleft())
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        return drop


def add_divergence_and_save_guards(cfg: Any) -> Any:
    """Use :class:`SafeCheckpointHook` for the config's checkpoint hook and add :class:`FiniteLossHook`.

    ``cfg`` is an mmengine ``Config`` before ``Runner.from_cfg``; returned for chaining.
    """
    ckpt = cfg.get("default_hooks", {}).get("checkpoint")
    if ckpt is not None and ckpt.get("type") in ("CheckpointHook", "mmengine.CheckpointHook", CheckpointHook):
        ckpt["type"] = "mmengine.SafeCheckpointHook"
    hooks = list(cfg.get("custom_hooks") or [])
    if not any(h.get("type") in ("FiniteLossHook", "mmengine.FiniteLossHook") for h in hooks):
        hooks.append(dict(type="mmengine.FiniteLossHook"))
    cfg.custom_hooks = hooks
    return cfg
