"""The pipeline reuses finished stages (pretraining marker, conversion cache, run records) and only tabulates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
import torchvision

from mixbench.base.io import atomic_write_json, sha256_file
from mixbench.pipeline import PipelineError, load_pipeline_config, run_pipeline
from mixbench.transfer.records import SCHEMA, record_path, write_record

VOC = "configs/transfer/demo/faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py"


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "pipe.py"
    path.write_text(body)
    return path


def test_bad_pipeline_config_names_the_file(tmp_path):
    path = _config(tmp_path, "pretrain = []\n")
    with pytest.raises(PipelineError, match="pipe.py: pipeline config lacks"):
        load_pipeline_config(path)
    path = _config(tmp_path, "pretrain=[]\nsuites=['voc']\nsuite_scale='demo'\nbn_modes=['frozen', 'x']\n"
                             "data_dir='d'\nwork_dir='w'\nresults_dir='r'\n")
    with pytest.raises(PipelineError, match=r"pipe.py: unknown suite or BN mode \['x'\]"):
        load_pipeline_config(path)
    path = _config(tmp_path, "pretrain=[]\nsuites=['kitti']\nbn_modes=['frozen']\n"
                             "data_dir='d'\nwork_dir='w'\nresults_dir='r'\n")
    with pytest.raises(PipelineError, match=r"pipe.py: unknown suite or BN mode \['kitti'\]"):
        load_pipeline_config(path)
    path = _config(tmp_path, "pretrain=[dict(name='m', config='configs/pretrain/nope.py')]\nsuites=['voc']\n"
                             "bn_modes=['frozen']\ndata_dir='d'\nwork_dir='w'\nresults_dir='r'\n")
    with pytest.raises(PipelineError, match="pipe.py: configs/pretrain/nope.py: no such config"):
        load_pipeline_config(path)


def test_second_run_reuses_every_finished_stage(tmp_path, monkeypatch, capsys):
    work, results, data = tmp_path / "work", tmp_path / "results", tmp_path / "data"
    data.mkdir()
    # A finished pretraining stage: its checkpoint and the marker the pipeline wrote after it.
    ckpt = work / "pretrain" / "moco" / "epoch_5.pth"
    ckpt.parent.mkdir(parents=True)
    sd = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    torch.save(sd, ckpt)
    atomic_write_json(ckpt.parent / "stage.json", {"checkpoint": str(ckpt), "sha256": sha256_file(ckpt)})
    # Finished transfer runs: one record per (config, checkpoint).
    metrics = {"moco": 0.31, "random": 0.12}
    for name, ap in metrics.items():
        write_record(record_path(results / "records", Path(VOC).stem, name), {
            "schema": SCHEMA, "status": "complete",
            "checkpoint": {"name": name, "sha256": sha256_file(ckpt) if name == "moco" else None},
            "config": {"name": Path(VOC).stem, "settings": {
                "detector": "Faster R-CNN", "backbone": "R18", "bn_mode": "frozen", "norm_type": "BN",
                "train_scale": [192, 144], "test_scale": [192, 144], "train_sets": ["VOC2007 trainval"],
                "test_set": "VOC2007 test", "epochs": 1, "lr": 0.01, "batch_per_process": 2, "world_size": 1,
                "data_root": str(data)}},
            "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
            "metrics": {"pascal_voc/AP50": ap, "pascal_voc/recall": ap + 0.2}})
    path = _config(tmp_path, f"data_dir={str(data)!r}\nwork_dir={str(work)!r}\nresults_dir={str(results)!r}\n"
                             f"pretrain=[dict(name='moco', config='configs/pretrain/moco_r18_synthetic.py')]\n"
                             "random_init=True\nbn_modes=['frozen']\nsuites=['voc']\nsuite_scale='demo'\n")

    def no_subprocess(*a, **k):
        raise AssertionError("a finished stage was started again")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    out = run_pipeline(path)
    printed = capsys.readouterr().out
    assert "pretrain moco: finished" in printed and printed.count("finished record found; reused") == 2
    assert len(list((work / "converted").glob("*.pth"))) == 1  # converted once, keyed by sha256
    table = (results / "tables.md").read_text()
    for name, ap in metrics.items():
        assert f"| {name}" in table and f"{100 * ap:.1f}" in table and f"{100 * (ap + 0.2):.1f}" in table
    assert {"markdown", "csv", "latex"} == set(out["tables"])
