"""Transfer one checkpoint with one mmdet config: convert -> mmengine Runner (train + test) -> run record.

    mixbench transfer CKPT --suite voc                       # one process (CPU or one GPU)
    torchrun --nproc-per-node 8 -m mixbench.cli transfer CKPT --suite all --launcher pytorch
    srun -N2 --ntasks-per-node 8 mixbench transfer CKPT --suite coco --launcher slurm

What the runner adds to a config (configs never hold checkpoint paths):
  * ``model.backbone.init_cfg = dict(type='Pretrained', checkpoint=<converted file>)`` where the converted file
    lives in a cache keyed by the source file's sha256 (``convert.api.convert_checkpoint``, any layout it reads);
  * ``model.data_preprocessor.mean/std`` from the converted file's metadata (what the encoder was fed);
  * the data root on every dataset (and on CocoMetric's annotation file);
  * BN: ``SyncBN`` only where it runs (several GPU processes), plain BN otherwise (one process, or CPU);
  * ``work_dir = work_dirs/transfer/<config name>/<checkpoint name>/<run key id>``, auto-resume from it.
Then it checks that every backbone tensor equals the converted file's (mmengine's ``PretrainedInit`` loads with
``strict=False`` and only warns), trains, tests, and writes the run record.

Run key: everything that decides the result, i.e. the checkpoint's sha256, the config's name and the digest of the
resolved config (``--cfg-options`` included), the data root, the seed and the world size
(:func:`run_key`). Work dirs, records and reuse are keyed by it: a run with another key never resumes another
run's checkpoints nor skips because of another run's record; it runs fresh in its own work dir. Every checkpoint
carries the key and a resume from one with another key stops (:func:`_run_key_hook`). One process at a time
holds a work dir (:func:`mixbench.base.locks.work_dir_lock`).
"""

from __future__ import annotations

import copy
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from mixbench.base.config import config_digest, key_id
from mixbench.base.launch import init_cpu_process_group, use_cpu_ddp
from mixbench.base.precision import apply_run_settings
from mixbench.transfer import ops_backend
from mixbench.transfer.records import (
    SCHEMA,
    git_commit,
    hardware,
    is_complete,
    load_record,
    metrics_status,
    package_versions,
    record_path,
    write_record,
)

RANDOM = "random"
DETECTORS = {"FasterRCNN": "Faster R-CNN", "RetinaNet": "RetinaNet", "MaskRCNN": "Mask R-CNN"}

class TransferError(RuntimeError):
    """A transfer run cannot go on (bad checkpoint, backbone not loaded, bad config); the message says why."""


@dataclass
class Checkpoint:
    """A pre-trained backbone to transfer: a file any converter layout reads, or random initialisation."""

    name: str
    path: Path | None  # None: random init (mmdet's default ResNet initialisation)
    sha256: str | None = None
    converted: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_random(self) -> bool:
        return self.path is None


def default_checkpoint_name(path: Path) -> str:
    """``moco_r50.pth`` -> ``moco_r50``; mmengine's ``<work_dir>/epoch_200.pth`` -> ``<work_dir name>_epoch_200``."""
    stem = path.name.split(".")[0]
    if re.fullmatch(r"(epoch|iter)_\d+|latest|last|checkpoint|model_final", stem):
        return f"{path.resolve().parent.name}_{stem}"
    return stem


def parse_checkpoint(spec: str) -> Checkpoint:
    """``random``, ``PATH`` or ``NAME=PATH``. The name keys work dirs, records and table rows."""
    if spec == RANDOM:
        return Checkpoint(name=RANDOM, path=None)
    name, sep, path = spec.partition("=")
    p = Path(path if sep else spec)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such checkpoint file (give a file, NAME=FILE, or '{RANDOM}')")
    name = name if sep else default_checkpoint_name(p)
    if not re.fullmatch(r"[\w.+-]+", name):
        raise ValueError(f"checkpoint name {name!r}: use letters, digits, '.', '_', '+', '-' only")
    return Checkpoint(name=name, path=p)


def prepare_checkpoint(ckpt: Checkpoint, cache_dir: str | Path) -> Checkpoint:
    """Convert ``ckpt`` to an mmdet backbone file in ``cache_dir/<sha256>.pth`` (once per content)."""
    if ckpt.is_random:
        return ckpt
    from mixbench.base.io import sha256_file
    from mixbench.base.safe_load import safe_torch_load

    ckpt.sha256 = sha256_file(ckpt.path)
    out = Path(cache_dir) / f"{ckpt.sha256}.pth"
    if not out.is_file():
        from mixbench.convert.api import convert_checkpoint

        try:
            convert_checkpoint(ckpt.path, out, to="mmdet")
        except (KeyError, ValueError, RuntimeError) as err:
            raise TransferError(f"{ckpt.path}: cannot be converted to an mmdet backbone: {err}") from err
    conv = safe_torch_load(out)
    meta = conv.get("meta", {}).get("mixbench_convert") if isinstance(conv, dict) else None
    if not meta or "state_dict" not in conv:
        raise TransferError(f"{out}: converted file lacks state_dict or meta['mixbench_convert']; delete it")
    ckpt.converted, ckpt.meta = out, meta
    for note in meta.get("notes") or []:
        print(f"[transfer] {ckpt.name}: conversion note: {note}")
    return ckpt


# ----------------------------------------------------------------------------------------------- config
def _datasets(cfg_node: Any) -> list[Any]:
    """Every leaf dataset dict under a dataloader's ``dataset`` (through RepeatDataset/ConcatDataset)."""
    if cfg_node is None:
        return []
    if "datasets" in cfg_node:
        return [d for sub in cfg_node["datasets"] for d in _datasets(sub)]
    if "dataset" in cfg_node:
        return _datasets(cfg_node["dataset"])
    return [cfg_node]


def _loaders(cfg: Any) -> list[Any]:
    return [cfg.get(k) for k in ("train_dataloader", "val_dataloader", "test_dataloader") if cfg.get(k)]


def suite_of(cfg: Any) -> str:
    """'voc' or 'coco', from the config's test evaluator (the metric decides which table a run belongs to)."""
    return "voc" if "VOC" in cfg.test_evaluator["type"] else "coco"


def suite_data_root(data_dir: str | Path, suite: str) -> str:
    """``--data-root DIR`` names the folder holding ``VOCdevkit/`` and ``coco/`` (mmdet's ``data/``)."""
    return str(Path(data_dir) / ("VOCdevkit" if suite == "voc" else "coco")) + "/"


def apply_data_root(cfg: Any, root: str) -> None:
    """Set ``data_root`` on every dataset and re-derive CocoMetric's ``ann_file`` from the val/test dataset."""
    root = root if root.endswith("/") else root + "/"
    cfg.data_root = root
    for loader in _loaders(cfg):
        for ds in _datasets(loader["dataset"]):
            ds["data_root"] = root
    for key, loader_key in (("val_evaluator", "val_dataloader"), ("test_evaluator", "test_dataloader")):
        ev = cfg.get(key)
        if ev and ev.get("type") == "CocoMetric" and cfg.get(loader_key):
            ds = _datasets(cfg[loader_key]["dataset"])[0]
            ev["ann_file"] = os.path.join(root, ds["ann_file"])


def use_checked_datasets(cfg: Any) -> None:
    """Swap mmdet's VOC/COCO datasets and image loader for :mod:`mixbench.transfer.datasets`' (same parsing; bad
    files named, dropped annotations counted), in every dataloader of the config."""
    from mixbench.transfer.datasets import SWAPS  # registers the types in mmdet's registries

    for loader in _loaders(cfg):
        for ds in _datasets(loader["dataset"]):
            ds["type"] = SWAPS.get(ds.get("type"), ds.get("type"))
            for step in ds.get("pipeline", []):
                step["type"] = SWAPS.get(step.get("type"), step.get("type"))


def _scale(pipeline: list[dict]) -> list[int]:
    for t in pipeline:
        if t.get("type") == "Resize":
            return list(t["scale"])
    raise TransferError("no Resize transform in the pipeline: cannot state the image scale")


def _set_name(ds: Any, suite: str) -> str:
    stem = Path(ds["ann_file"]).stem
    if suite == "voc":
        return f"{ds.get('data_prefix', {}).get('sub_data_root', '').strip('/')} {stem}".strip()
    return stem.replace("instances_", "")


def key_settings(cfg: Any, world_size: int) -> dict[str, Any]:
    """The settings a results table must state, read back from the resolved config."""
    model = cfg.model
    bb = model.backbone
    norm = bb.norm_cfg
    if bb.get("norm_eval") and not norm.get("requires_grad", True):
        bn_mode = "frozen"
    elif not bb.get("norm_eval") and norm.get("requires_grad", True):
        bn_mode = "finetune"
    else:
        bn_mode = "custom"
    evaluator = cfg.test_evaluator
    suite = suite_of(cfg)
    train = cfg.train_dataloader.dataset
    times = train.get("times", 1) if train.get("type") == "RepeatDataset" else 1
    train_sets = _datasets(train)
    test_set = _datasets(cfg.test_dataloader.dataset)[0]
    max_epochs = cfg.train_cfg.max_epochs
    heads = {k: v for k, v in model.items() if k.endswith("head")}
    head_norms = {k: v.get("norm_cfg") for k, v in heads.items() if k != "roi_head"}
    for k, v in model.get("roi_head", {}).items():
        if isinstance(v, dict) and k.endswith("head"):
            head_norms[f"roi_head.{k}"] = v.get("norm_cfg")
    return {
        "detector": DETECTORS.get(model.type, model.type),
        "suite": suite,
        "backbone": f"R{bb.depth}",
        "bn_mode": bn_mode,
        "norm_type": norm["type"],
        "norm_requires_grad": norm.get("requires_grad", True),
        "norm_eval": bool(bb.get("norm_eval")),
        "frozen_stages": bb.get("frozen_stages", -1),
        "neck_norm": model.neck.get("norm_cfg"),
        "fpn_channels": model.neck.get("out_channels"),
        "head_norms": head_norms,
        "train_scale": _scale(train_sets[0]["pipeline"]),
        "test_scale": _scale(test_set["pipeline"]),
        "train_sets": [_set_name(d, suite) for d in train_sets],
        "test_set": _set_name(test_set, suite),
        "repeat_times": times,
        "max_epochs": max_epochs,
        "epochs": max_epochs * times,
        "lr": cfg.optim_wrapper.optimizer.lr,
        "batch_per_process": cfg.train_dataloader.batch_size,
        "world_size": world_size,
        "param_scheduler": [dict(s) for s in cfg.param_scheduler],
        "metric": dict(evaluator),
        "pixel_mean": list(model.data_preprocessor.mean),
        "pixel_std": list(model.data_preprocessor.std),
        "data_root": cfg.data_root,
    }


def work_dir_for(config: str | Path, ckpt_name: str, root: str | Path = "work_dirs/transfer",
                 key: dict[str, Any] | None = None) -> Path:
    """``root/<config name>/<checkpoint name>[/<run key id>]``: one folder per run key."""
    base = Path(root) / Path(config).stem / ckpt_name
    return base / key_id(key) if key is not None else base


def run_key(cfg: Any, config: str | Path, ckpt: Checkpoint, seed: int, world_size: int) -> dict[str, Any]:
    """What decides a transfer result, as stated in its record and compared before any resume or reuse.

    ``cfg`` is the resolved config from :func:`build_config`. The converted file's folder is left out of the
    digest (its name is the source's sha256, which the key holds), so the CLI and the pipeline, which cache
    conversions in different folders, agree on the key.
    """
    cfg = copy.deepcopy(cfg)
    init = cfg.model.backbone.get("init_cfg")
    if init and init.get("checkpoint"):
        init["checkpoint"] = Path(init["checkpoint"]).name
    return {"checkpoint_sha256": ckpt.sha256, "config": Path(config).stem, "config_sha256": config_digest(cfg),
            "data_root": os.path.abspath(cfg.data_root), "seed": int(seed), "world_size": int(world_size)}


def build_config(config: str | Path, ckpt: Checkpoint, work_dir: Path, *, data_dir: str | Path | None = None,
                 cfg_options: dict | None = None, world_size: int = 1, seed: int = 0, resume: bool = True,
                 launcher: str = "none", amp: bool = False) -> Any:
    """Load a transfer config and inject checkpoint, pixel statistics, data root, BN type and run settings."""
    from mmengine.config import Config

    from mixbench.base.hooks import guard_config

    cfg = Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    apply_data_root(cfg, suite_data_root(data_dir, suite_of(cfg)) if data_dir else cfg.get("data_root", "data/"))
    use_checked_datasets(cfg)
    bb = cfg.model.backbone
    if ckpt.is_random:
        bb.init_cfg = None  # mmdet's default ResNet initialisation (Kaiming conv, BN weight 1 bias 0)
        if not bb.norm_cfg.get("requires_grad", True):
            # mmdet also zero-initialises the last BN weight of every residual block (zero_init_residual). With
            # BN frozen that weight can never move: every residual branch stays 0 for good and the "ResNet" is its
            # stem and three 1x1 shortcut convs. Random init means a ResNet with random weights, so it is off here.
            bb.zero_init_residual = False
    else:
        bb.init_cfg = dict(type="Pretrained", checkpoint=str(ckpt.converted))
        cfg.model.data_preprocessor.mean = [float(v) for v in ckpt.meta["pixel_mean"]]
        cfg.model.data_preprocessor.std = [float(v) for v in ckpt.meta["pixel_std"]]
        # mmcv decodes BGR; the converted meta says the encoder saw RGB (to_rgb=True).
        cfg.model.data_preprocessor.bgr_to_rgb = bool(ckpt.meta.get("to_rgb", True))
    # SyncBN synchronises over GPU processes only; one process (or CPU/gloo) uses plain BN, same semantics.
    if bb.norm_cfg.type == "SyncBN" and not (torch.cuda.is_available() and world_size > 1):
        bb.norm_cfg.type = "BN"
    cfg.work_dir = str(work_dir)
    cfg.resume = resume
    cfg.load_from = None
    cfg.launcher = launcher
    cfg.randomness = dict(seed=seed, deterministic=False)
    # Runners built one after another in one process (the pipeline) must not share mmengine's named visualizer.
    cfg.visualizer.name = f"{Path(config).stem}/{ckpt.name}/{time.time_ns()}"
    if launcher != "none" and not torch.cuda.is_available():
        use_cpu_ddp(cfg)
    apply_run_settings(cfg, amp=amp)  # --amp, cudnn benchmark on GPU -> cfg.mixbench_run (stored in the record)
    guard_config(cfg)  # stop at a non-finite loss; checkpoint saves that cannot lose the last good one
    return cfg


def transfer_run_key(config: str | Path, ckpt: Checkpoint, *, data_dir: str | Path | None,
                     cfg_options: dict | None, seed: int = 0, world_size: int = 1) -> dict[str, Any]:
    """The run key :func:`run_transfer` will use for these arguments (the pipeline decides reuse with it)."""
    cfg = build_config(config, ckpt, work_dir_for(config, ckpt.name), data_dir=data_dir, cfg_options=cfg_options,
                       world_size=world_size, seed=seed)
    return run_key(cfg, config, ckpt, seed, world_size)


# ----------------------------------------------------------------------------------------------- checks
def backbone_mismatches(backbone: torch.nn.Module, expected: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Compare a backbone's tensors with a converted state_dict; empty lists mean every key loaded.

    ``num_batches_tracked`` is ignored: it counts BN updates and some sources do not save it.
    """
    have = {k: v for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    want = {k: v for k, v in expected.items() if not k.endswith("num_batches_tracked")}
    shape = [k for k in have.keys() & want.keys() if have[k].shape != want[k].shape]
    value = [k for k in have.keys() & want.keys()
             if k not in shape and not torch.equal(have[k].cpu(), want[k].to(have[k].dtype).cpu())]
    return {"missing": sorted(have.keys() - want.keys()), "unexpected": sorted(want.keys() - have.keys()),
            "shape": sorted(shape), "value": sorted(value)}


def check_backbone_loaded(backbone: torch.nn.Module, converted: Path, context: str) -> None:
    """Raise :class:`TransferError` unless every backbone tensor equals the converted file's."""
    from mixbench.base.safe_load import safe_torch_load

    bad = backbone_mismatches(backbone, safe_torch_load(converted)["state_dict"])
    if any(bad.values()):
        detail = "; ".join(f"{len(v)} {k} (e.g. {', '.join(v[:3])})" for k, v in bad.items() if v)
        raise TransferError(
            f"{context}: the backbone did not load from {converted}: {detail}. mmengine loads with strict=False "
            "and would silently train these from scratch; check that the checkpoint matches the config's "
            "backbone (depth, width) and is a backbone checkpoint."
        )


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


# ----------------------------------------------------------------------------------------------- launch
def init_launcher(launcher: str) -> int:
    """Initialise distributed training before the Runner; returns the world size.

    On GPUs mmengine's launcher (nccl); on CPU the gloo group of :mod:`mixbench.base.launch` (mmengine then
    skips its own).
    """
    import torch.distributed as dist

    if launcher != "none" and torch.cuda.is_available():
        from mmengine.dist import init_dist

        if not dist.is_initialized():
            init_dist(launcher, backend="nccl")
        return dist.get_world_size()
    return init_cpu_process_group(launcher)


# ----------------------------------------------------------------------------------------------- run
def _clear_checkpoints(work_dir: Path) -> None:
    """--force: drop this run's own mmengine checkpoints so nothing resumes from the old run."""
    if not work_dir.is_dir():
        return
    for f in [*work_dir.glob("*.pth"), work_dir / "last_checkpoint"]:
        f.unlink(missing_ok=True)


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
    from mmengine.dist import get_rank

    from mixbench.base.locks import work_dir_lock

    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"{config}: no such transfer config")
    world_size = world_size or init_launcher(launcher)
    if ckpt.path is not None and ckpt.converted is None:
        prepare_checkpoint(ckpt, cache_dir or Path(work_root) / "_converted")
    cfg = build_config(config, ckpt, work_dir_for(config, ckpt.name, work_root), data_dir=data_dir,
                       cfg_options=cfg_options, world_size=world_size, seed=seed, resume=True, launcher=launcher,
                       amp=amp)
    key = run_key(cfg, config, ckpt, seed, world_size)
    work_dir = work_dir_for(config, ckpt.name, work_root, key)
    cfg.work_dir = str(work_dir)
    rec_path = record_path(records_dir, config.stem, ckpt.name)
    if not force and is_complete(rec_path, key):
        print(f"[transfer] {config.stem} / {ckpt.name}: finished record {rec_path} of the same run key found; "
              "skipped (--force reruns)")
        return load_record(rec_path)
    if get_rank() != 0:  # rank 0 holds the work dir for every process of this run
        return _train_and_record(cfg, config, ckpt, key, rec_path, force, seed, launcher, world_size, cfg_options)
    with work_dir_lock(work_dir):
        return _train_and_record(cfg, config, ckpt, key, rec_path, force, seed, launcher, world_size, cfg_options)


def init_description(cfg: Any, ckpt: Checkpoint) -> str:
    """How the backbone started, for the run record: pretrained, or which random initialisation."""
    if not ckpt.is_random:
        return "pretrained"
    zeroed = cfg.model.backbone.get("zero_init_residual", True)
    return "random (mmdet's Kaiming init" + ("" if zeroed else ", zero_init_residual off") + ")"


def _train_and_record(cfg: Any, config: Path, ckpt: Checkpoint, key: dict[str, Any], rec_path: Path, force: bool,
                      seed: int, launcher: str, world_size: int, cfg_options: dict | None) -> dict[str, Any]:
    """Train (resuming this key's own checkpoints), test and write the record; the caller holds the work dir."""
    from mmengine.dist import get_rank
    from mmengine.runner import Runner

    from mixbench.base.safe_load import allow_mmengine_checkpoints
    from mixbench.transfer.datasets import DATA_REPORTS, data_report

    DATA_REPORTS.clear()  # this run's datasets only (the pipeline may build several runs in one process)
    work_dir = Path(cfg.work_dir)
    if get_rank() == 0:
        if force:
            _clear_checkpoints(work_dir)
        _stamp_work_dir(work_dir, key)
    settings = key_settings(cfg, world_size)
    op_backends = ops_backend.configure()  # chosen once per process: mmcv kernels, or torchvision on CUDA
    ops_backend.check_config_ops(cfg.model)
    allow_mmengine_checkpoints()  # mmengine resumes its own checkpoints under weights_only=True
    started = time.time()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(_run_key_hook(key), priority="VERY_HIGH")
    if not ckpt.is_random:
        runner.register_hook(_check_hook(ckpt.converted, f"{config.stem} / {ckpt.name}"), priority="HIGHEST")
    runner.train()
    # The test loop directly: Runner.test() would first auto-resume the last checkpoint again (same weights).
    metrics = runner.test_loop.run()
    wall = time.time() - started
    status, why = metrics_status(metrics)
    record = {
        "schema": SCHEMA,
        "status": status,
        "run_key": key,
        "run_key_id": key_id(key),
        "checkpoint": {"name": ckpt.name, "path": str(ckpt.path) if ckpt.path else None, "sha256": ckpt.sha256,
                       "converted": str(ckpt.converted) if ckpt.converted else None,
                       "init": init_description(cfg, ckpt),
                       # what the converter filled in or assumed (e.g. num_batches_tracked): never silent
                       "conversion_notes": list(ckpt.meta.get("notes") or []),
                       "convert_meta": _plain(ckpt.meta)},
        "config": {"name": config.stem, "path": str(config), "settings": _plain(settings),
                   "cfg_options": _plain(cfg_options or {})},
        "suite": settings["suite"],
        "detector": settings["detector"],
        "bn_mode": settings["bn_mode"],
        "metrics": {k: float(v) for k, v in metrics.items()},
        "seed": seed,
        "world_size": world_size,
        "launcher": launcher,
        "precision": _plain(cfg.mixbench_run),
        "ops_backend": op_backends,
        "hardware": hardware(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "wall_time_s": round(wall, 2),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "work_dir": str(work_dir),
        "data": data_report(),  # annotations dropped/clipped and images skipped, per dataset and reason
    }
    if why:
        record["invalid_reason"] = why
    if not metrics:  # e.g. CocoMetric with no detection above the score threshold: shown as "—" in tables
        record["note"] = "the evaluator returned no metrics (no detections above the test score threshold)"
    if get_rank() == 0:
        write_record(rec_path, record)
        print(f"[transfer] {config.stem} / {ckpt.name}: record written to {rec_path}"
              + (f" (status {status}: {why}; tables leave it out)" if why else ""))
    return record


def _stamp_work_dir(work_dir: Path, key: dict[str, Any]) -> None:
    """Write ``run_key.json``; a work dir already stamped with another key (a key-id collision or a hand-copied
    folder) is refused rather than resumed."""
    import json

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
