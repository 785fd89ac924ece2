"""Transfer one checkpoint with one mmdet config: convert -> mmengine Runner (train + test) -> run record.

    mixbench transfer CKPT --suite voc                       # one process (CPU or one GPU)
    torchrun --nproc-per-node 8 -m mixbench.cli transfer CKPT --suite all --launcher pytorch
    srun -N2 --ntasks-per-node 8 mixbench transfer CKPT --suite coco --launcher slurm

The checkpoint is converted once per content (:mod:`mixbench.transfer.checkpoint`), the config gets the
checkpoint, data root and run settings (:mod:`mixbench.transfer.config`), and the run goes through the lifecycle
every stage shares (:mod:`mixbench.base.lifecycle`). Before the first iteration every backbone tensor is compared
with the converted file; after training and testing, the run record is written.

Run key (:func:`run_key`): the checkpoint's sha256, the config's name and the digest of the resolved config
(``--cfg-options`` included), the data root, the seed and the world size. Work dirs and records are keyed by it:
``work_dirs/transfer/<config>/<checkpoint>/<run key id>`` and ``<records>/<config>/<checkpoint>/<run key id>.json``.
A run with another key never resumes another run's checkpoints, never skips because of another run's record and
never overwrites it. Every checkpoint carries the key, and a resume from one with another key stops
(:func:`_run_key_hook`).

A record is ``complete`` only when the run trained at least one iteration, its test loop evaluated at least one
image and every metric is finite; otherwise it is ``invalid`` with the reason, and tables leave it out.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from mixbench.base import runkey
from mixbench.base.dist import rank
from mixbench.base.launch import init_launcher
from mixbench.base.lifecycle import run_runner
from mixbench.base.provenance import provenance
from mixbench.transfer import ops_backend
from mixbench.transfer.checkpoint import Checkpoint, TransferError, check_backbone_loaded, prepare_checkpoint
from mixbench.transfer.config import build_config, protocol_settings
from mixbench.transfer.records import SCHEMA, is_complete, load_record, metrics_status, record_path, write_record

__all__ = ["init_description", "run_key", "run_status", "run_transfer", "transfer_run_key", "work_dir_for"]


def work_dir_for(config: str | Path, ckpt_name: str, root: str | Path = "work_dirs/transfer",
                 key: dict[str, Any] | None = None) -> Path:
    """``root/<config name>/<checkpoint name>[/<run key id>]``: one folder per run key."""
    base = Path(root) / Path(config).stem / ckpt_name
    return base / runkey.key_id(key) if key is not None else base


def run_key(cfg: Any, config: str | Path, ckpt: Checkpoint, seed: int, world_size: int) -> dict[str, Any]:
    """What decides a transfer result (:func:`mixbench.base.runkey.run_key` plus the checkpoint's sha256).

    ``cfg`` is the resolved config from :func:`mixbench.transfer.config.build_config`. The converted file's folder
    is left out of the digest (its name is the source's sha256, which the key holds), so the CLI and the pipeline,
    which cache conversions in different folders, agree on the key.
    """
    cfg = copy.deepcopy(cfg)
    init = cfg.model.backbone.get("init_cfg")
    if init and init.get("checkpoint"):
        init["checkpoint"] = Path(init["checkpoint"]).name
    return runkey.run_key(cfg, config=config, seed=seed, world_size=world_size, data_root=cfg.data_root,
                          checkpoint_sha256=ckpt.sha256)


def transfer_run_key(config: str | Path, ckpt: Checkpoint, *, data_dir: str | Path | None,
                     cfg_options: dict | None, seed: int = 0, world_size: int = 1) -> dict[str, Any]:
    """The run key :func:`run_transfer` will use for these arguments (the pipeline decides reuse with it)."""
    cfg = build_config(config, ckpt, work_dir_for(config, ckpt.name), data_dir=data_dir, cfg_options=cfg_options,
                       world_size=world_size, seed=seed)
    return run_key(cfg, config, ckpt, seed, world_size)


def init_description(cfg: Any, ckpt: Checkpoint) -> str:
    """How the backbone started, for the run record: pretrained, or which random initialisation."""
    if not ckpt.is_random:
        return "pretrained"
    zeroed = cfg.model.backbone.get("zero_init_residual", True)
    return "random (mmdet's Kaiming init" + ("" if zeroed else ", zero_init_residual off") + ")"


def run_status(metrics: dict[str, Any], iterations: int, test_images: int) -> tuple[str, str | None]:
    """``('complete', None)`` for a run that measured something; else ``('invalid', why)``."""
    if iterations < 1:
        return "invalid", "the run trained no iteration: its metrics are those of the untrained detector"
    if test_images < 1:
        return "invalid", "the test loop evaluated no image"
    return metrics_status(metrics)


# ----------------------------------------------------------------------------------------------- hooks
def _check_hook(converted: Path, context: str):
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper

    class BackboneLoadCheckHook(Hook):
        """After mmengine initialised the weights (before the first iteration), compare them with the file."""

        priority = "HIGHEST"

        def before_train(self, runner) -> None:
            if runner.iter > 0:  # resumed from our own checkpoint: the first start of this run was checked
                return
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            check_backbone_loaded(model.backbone, converted, context)

    return BackboneLoadCheckHook()


def _run_key_hook(key: dict[str, Any]):
    from mmengine.hooks import Hook

    class RunKeyHook(Hook):
        """Stamp every checkpoint with the run key; refuse to resume from a checkpoint of another key."""

        priority = "VERY_HIGH"

        def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
            checkpoint.setdefault("meta", {})["mixbench_run_key"] = key

        def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
            found = checkpoint.get("meta", {}).get("mixbench_run_key")
            if found != key:
                raise TransferError(
                    f"{runner.work_dir}: the checkpoint to resume belongs to another run (key {found}, this run "
                    f"{key}); it would carry another run's training into this record. Delete the work dir or "
                    "rerun with --force."
                )

    return RunKeyHook()


def _test_image_counter():
    from mmengine.hooks import Hook

    class TestImageCounter(Hook):
        """Counts the images the test loop evaluated (one output per image)."""

        priority = "LOWEST"
        images = 0

        def before_test_epoch(self, runner) -> None:
            self.images = 0

        def after_test_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            self.images += len(outputs or [])

    return TestImageCounter()


# ----------------------------------------------------------------------------------------------- run
@dataclass
class _Run:
    """The facts of one transfer run that its record states."""

    config: Path
    ckpt: Checkpoint
    key: dict[str, Any]
    record_path: Path
    seed: int
    launcher: str
    world_size: int
    cfg_options: dict | None
    force: bool


def run_transfer(config: str | Path, ckpt: Checkpoint, *, records_dir: str | Path = "results/records",
                 work_root: str | Path = "work_dirs/transfer", cache_dir: str | Path | None = None,
                 data_dir: str | Path | None = None, cfg_options: dict | None = None, force: bool = False,
                 seed: int = 0, launcher: str = "none", world_size: int | None = None,
                 amp: bool = False) -> dict[str, Any]:
    """Fine-tune and evaluate one checkpoint with one config; return (and write) its run record.

    A finished record of the same run key (:func:`run_key`) is returned as is unless ``force``. An interrupted run
    resumes from its key's ``work_dir/last_checkpoint`` (mmengine's auto-resume); another key starts fresh in its
    own work dir. A second process on the same work dir is refused (:class:`mixbench.base.locks.WorkDirLockedError`).
    """
    config = Path(config)
    world_size = world_size or init_launcher(launcher)
    if ckpt.path is not None and ckpt.converted is None:
        prepare_checkpoint(ckpt, cache_dir or Path(work_root) / "_converted")
    cfg = build_config(config, ckpt, work_dir_for(config, ckpt.name, work_root), data_dir=data_dir,
                       cfg_options=cfg_options, world_size=world_size, seed=seed, resume=True, launcher=launcher,
                       amp=amp)
    key = run_key(cfg, config, ckpt, seed, world_size)
    cfg.work_dir = str(work_dir_for(config, ckpt.name, work_root, key))
    run = _Run(config, ckpt, key, record_path(records_dir, config.stem, ckpt.name, runkey.key_id(key)), seed,
               launcher, world_size, cfg_options, force)
    if not force and is_complete(run.record_path, key):
        print(f"[transfer] {config.stem} / {ckpt.name}: finished record {run.record_path} of the same run key "
              "found; skipped (--force reruns)")
        return load_record(run.record_path)
    return _train_and_record(cfg, run)


def _train_and_record(cfg: Any, run: _Run) -> dict[str, Any]:
    """Train (resuming this key's own checkpoints), test and write the record, through the shared lifecycle."""
    from mixbench.transfer.datasets import DATA_REPORTS, check_eval_splits

    DATA_REPORTS.clear()  # this run's datasets only (the pipeline may build several runs in one process)
    op_backends = ops_backend.configure()  # chosen once per process: mmcv kernels, or torchvision on CUDA
    ops_backend.check_config_ops(cfg.model)
    counter = _test_image_counter()
    hooks = [(_run_key_hook(run.key), "VERY_HIGH"), (counter, "LOWEST")]
    if not run.ckpt.is_random:
        hooks.append((_check_hook(run.ckpt.converted, f"{run.config.stem} / {run.ckpt.name}"), "HIGHEST"))

    def body(runner: Any) -> dict[str, Any]:
        check_eval_splits(runner)  # a missing or empty val/test image stops the run here, before training
        work_dir = Path(cfg.work_dir)
        if rank() == 0:  # rank 0 holds the work dir (run_runner's lock)
            if run.force:
                _clear_checkpoints(work_dir)
            _stamp_work_dir(work_dir, run.key)
        started = time.time()
        runner.train()
        # The test loop directly: Runner.test() would first auto-resume the last checkpoint again (same weights).
        metrics = runner.test_loop.run()
        status = run_status(metrics, int(runner.iter), counter.images)
        record = build_record(cfg, run, metrics, status, wall=time.time() - started, op_backends=op_backends)
        if rank() == 0:
            write_record(run.record_path, record)
            print(f"[transfer] {run.config.stem} / {run.ckpt.name}: record written to {run.record_path}"
                  + (f" (status {status[0]}: {status[1]}; tables leave it out)" if status[1] else ""))
        return record

    return run_runner(cfg, body, hooks=hooks)


def build_record(cfg: Any, run: _Run, metrics: dict[str, Any], status: tuple[str, str | None], *, wall: float,
                 op_backends: dict[str, Any]) -> dict[str, Any]:
    """The run record (schema :data:`mixbench.transfer.records.SCHEMA`) of a finished run."""
    from mixbench.transfer.datasets import data_report

    settings = protocol_settings(cfg, run.world_size)
    ckpt = run.ckpt
    record = {
        "schema": SCHEMA,
        "status": status[0],
        "run_key": run.key,
        "run_key_id": runkey.key_id(run.key),
        "checkpoint": {"name": ckpt.name, "path": str(ckpt.path) if ckpt.path else None, "sha256": ckpt.sha256,
                       "converted": str(ckpt.converted) if ckpt.converted else None,
                       "init": init_description(cfg, ckpt),
                       # what the converter filled in or assumed (e.g. num_batches_tracked): never silent
                       "conversion_notes": list(ckpt.meta.notes) if ckpt.meta else [],
                       "convert_meta": ckpt.meta.to_dict() if ckpt.meta else {}},
        "config": {"name": run.config.stem, "path": str(run.config), "settings": _plain(settings),
                   "cfg_options": _plain(run.cfg_options or {})},
        "suite": settings["suite"],
        "detector": settings["detector"],
        "bn_mode": settings["bn_mode"],
        "metrics": {k: float(v) for k, v in metrics.items()},
        "seed": run.seed,
        "world_size": run.world_size,
        "launcher": run.launcher,
        "precision": _plain(cfg.mixbench_run),
        "ops_backend": op_backends,
        **provenance(),
        "wall_time_s": round(wall, 2),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "work_dir": str(cfg.work_dir),
        "data": data_report(),  # annotations dropped/clipped and images skipped, per dataset and reason
    }
    if status[1]:
        record["invalid_reason"] = status[1]
    return record


def _clear_checkpoints(work_dir: Path) -> None:
    """--force: drop this run's own mmengine checkpoints so nothing resumes from the old run."""
    if not work_dir.is_dir():
        return
    for f in [*work_dir.glob("*.pth"), work_dir / "last_checkpoint"]:
        f.unlink(missing_ok=True)


def _stamp_work_dir(work_dir: Path, key: dict[str, Any]) -> None:
    """Write ``run_key.json``; a work dir already stamped with another key (a key-id collision or a hand-copied
    folder) is refused rather than resumed."""
    from mixbench.base.io import atomic_write_json

    stamp = work_dir / "run_key.json"
    if stamp.is_file():
        found = json.loads(stamp.read_text())
        if found != key:
            raise TransferError(f"{stamp}: this work dir belongs to another run (key {found}, this run {key}); "
                                "delete it or rerun with --force")
        return
    atomic_write_json(stamp, key)


def _plain(obj: Any) -> Any:
    """Config/meta values as JSON-able plain python (ConfigDict, tuples, tensors, paths)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)
