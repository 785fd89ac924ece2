"""``mixbench pipeline [CONFIG]``: pretrain -> convert -> transfer (VOC, COCO) -> tables, resumable.

One pipeline config (``configs/pipeline/*.py``) names the pretraining configs to compare, the transfer suites
(configs per BN mode), the data and the output folders. Without a config the embedded demo runs
(``configs/pipeline/demo_synthetic.py``): synthetic data (generated if absent), ResNet-18 MoCo and MoCo+mixtures
pretrained for a few epochs, a random-init baseline, Faster R-CNN on VOC and RetinaNet + Mask R-CNN on COCO at
small scale, then the Table 7/8 layouts, all on CPU.

Resumable: each stage leaves a marker or a record; a second run skips what is finished (pretraining: a
``stage.json`` with the checkpoint's sha256 beside it; conversion: the sha256-keyed cache; transfer: run records),
and an interrupted stage resumes from its mmengine checkpoints.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from convert.io_utils import atomic_write_json, atomic_write_text, sha256_file

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "pipeline" / "demo_synthetic.py"
REQUIRED_KEYS = ("pretrain", "suites", "bn_modes", "data_dir", "work_dir", "results_dir")


class PipelineError(RuntimeError):
    """A pipeline stage failed or the pipeline config is wrong; the message names the stage and the file."""


def _repo_path(p: str | Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else REPO / p


def load_pipeline_config(path: str | Path | None) -> dict[str, Any]:
    from mmengine.config import Config

    path = Path(path) if path else DEMO_CONFIG
    if not path.is_file():
        raise PipelineError(f"{path}: no such pipeline config")
    cfg = Config.fromfile(str(path)).to_dict()
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise PipelineError(f"{path}: pipeline config lacks {missing}")
    for mode in cfg["bn_modes"]:
        if mode not in ("frozen", "finetune"):
            raise PipelineError(f"{path}: bn_modes entry {mode!r} is not 'frozen' or 'finetune'")
    for suite, modes in cfg["suites"].items():
        for mode in cfg["bn_modes"]:
            if mode not in modes:
                raise PipelineError(f"{path}: suite {suite!r} has no configs for BN mode {mode!r}")
            for c in modes[mode]:
                if not _repo_path(c).is_file():
                    raise PipelineError(f"{path}: transfer config {c} does not exist")
    for entry in cfg["pretrain"]:
        if not _repo_path(entry["config"]).is_file():
            raise PipelineError(f"{path}: pretraining config {entry['config']} does not exist")
    cfg["_path"] = str(path)
    return cfg


def _log(msg: str) -> None:
    print(f"[pipeline {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_data(cfg: dict[str, Any]) -> None:
    synthetic = cfg.get("synthetic")
    data_dir = Path(cfg["data_dir"])
    if not synthetic:
        if not data_dir.is_dir():
            raise PipelineError(f"data_dir {data_dir} does not exist")
        return
    from transfer.synthetic import generate

    _log(f"data: synthetic preset {synthetic['preset']!r} seed {synthetic.get('seed', 0)} in {data_dir}")
    generate(data_dir, seed=synthetic.get("seed", 0), preset=synthetic["preset"])


def _last_checkpoint(work_dir: Path) -> Path | None:
    marker = work_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    p = Path(marker.read_text().strip())
    p = p if p.is_absolute() else Path.cwd() / p
    return p if p.is_file() else None


def pretrain_stage(cfg: dict[str, Any], entry: dict[str, Any], force: bool) -> Path:
    """Run one pretraining config in a subprocess (``mixbench pretrain``); return its final checkpoint."""
    work_dir = Path(cfg["work_dir"]) / "pretrain" / entry["name"]
    stage = work_dir / "stage.json"
    if stage.is_file() and not force:
        import json

        done = json.loads(stage.read_text())
        ckpt = Path(done["checkpoint"])
        if ckpt.is_file() and sha256_file(ckpt) == done["sha256"]:
            _log(f"pretrain {entry['name']}: finished ({ckpt}); reused")
            return ckpt
    cmd = [sys.executable, "-m", "transfer.cli", "pretrain", str(_repo_path(entry["config"])),
           "--work-dir", str(work_dir)]
    if (work_dir / "last_checkpoint").is_file() and not force:
        cmd.append("--resume")
    options = [f"{k}={v}" for k, v in entry.get("cfg_options", {}).items()]
    if options:
        cmd += ["--cfg-options", *options]
    _log(f"pretrain {entry['name']}: {' '.join(cmd[2:])}")
    t0 = time.time()
    if subprocess.run(cmd).returncode != 0:
        raise PipelineError(f"pretraining {entry['name']} ({entry['config']}) failed; see {work_dir}")
    ckpt = _last_checkpoint(work_dir)
    if ckpt is None:
        raise PipelineError(f"pretraining {entry['name']} left no checkpoint in {work_dir}")
    atomic_write_json(stage, {"checkpoint": str(ckpt), "sha256": sha256_file(ckpt),
                              "seconds": round(time.time() - t0, 1)})
    _log(f"pretrain {entry['name']}: done in {time.time() - t0:.0f} s -> {ckpt}")
    return ckpt


def run_pipeline(config: str | Path | None = None, force: bool = False) -> dict[str, Any]:
    """Run every stage of a pipeline config; return {'records': [...], 'tables': {format: path}, 'seconds'}."""
    from transfer.records import collect_records
    from transfer.runner import Checkpoint, TransferError, prepare_checkpoint, run_transfer
    from transfer.tables import build_blocks, render

    t0 = time.time()
    cfg = load_pipeline_config(config)
    _log(f"config {cfg['_path']}")
    ensure_data(cfg)

    ckpts = [Checkpoint(name="random", path=None)] if cfg.get("random_init", True) else []
    for entry in cfg["pretrain"]:
        ckpts.append(Checkpoint(name=entry["name"], path=pretrain_stage(cfg, entry, force)))

    work = Path(cfg["work_dir"])
    for ckpt in ckpts:
        if not ckpt.is_random:
            try:
                prepare_checkpoint(ckpt, work / "converted")
            except (TransferError, ValueError, RuntimeError) as err:
                raise PipelineError(f"convert {ckpt.name}: {err}") from err
            _log(f"convert {ckpt.name}: {ckpt.path} -> {ckpt.converted}")

    results = Path(cfg["results_dir"])
    records_dir = results / "records"
    for suite, modes in cfg["suites"].items():
        for mode in cfg["bn_modes"]:
            for config_path in modes[mode]:
                for ckpt in ckpts:
                    t1 = time.time()
                    try:
                        rec = run_transfer(_repo_path(config_path), ckpt, records_dir=records_dir,
                                           work_root=work / "transfer", data_dir=cfg["data_dir"],
                                           cfg_options=cfg.get("transfer_cfg_options"), force=force,
                                           seed=cfg.get("seed", 0))
                    except TransferError as err:
                        raise PipelineError(f"transfer {Path(config_path).stem} / {ckpt.name}: {err}") from err
                    _log(f"transfer {suite} {mode} {Path(config_path).stem} / {ckpt.name}: "
                         f"{time.time() - t1:.0f} s, {rec['metrics']}")

    records = [rec for _, rec in collect_records([records_dir])]
    blocks = build_blocks(records, paper=bool(cfg.get("paper_rows", False)))
    tables = {}
    for fmt, ext in (("markdown", "md"), ("csv", "csv"), ("latex", "tex")):
        text = render(blocks, fmt)
        if fmt == "markdown":
            text = (f"<!-- generated by `mixbench pipeline {cfg['_path']}` from {records_dir}; "
                    "do not edit -->\n\n" + text)
        tables[fmt] = atomic_write_text(results / f"tables.{ext}", text)
    seconds = time.time() - t0
    print(render(blocks, "markdown"))
    _log(f"tables written to {results}/tables.{{md,csv,tex}}; total {seconds:.0f} s")
    return {"records": records, "tables": tables, "seconds": seconds}
