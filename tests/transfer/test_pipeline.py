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

REPO = Path(__file__).resolve().parents[2]
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


def _finished_pipeline(tmp_path: Path, pretrain_options: str = "", transfer_options: str = "") -> tuple[Path, dict]:
    """A pipeline config whose stages all look finished under the keys of the ORIGINAL settings."""
    from mixbench.base.config import key_id
    from mixbench.pipeline import pretrain_key
    from mixbench.transfer.runner import Checkpoint, prepare_checkpoint, transfer_run_key

    work, results, data = tmp_path / "work", tmp_path / "results", tmp_path / "data"
    data.mkdir(exist_ok=True)
    entry = dict(name="moco", config=str(REPO / "configs/pretrain/moco_r18_synthetic.py"))
    key = pretrain_key(entry)
    # A finished pretraining stage: its checkpoint and the marker the pipeline wrote after it, in its key's folder.
    ckpt = work / "pretrain" / "moco" / key_id(key) / "epoch_5.pth"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    torch.save(sd, ckpt)
    atomic_write_json(ckpt.parent / "stage.json", {"checkpoint": str(ckpt), "sha256": sha256_file(ckpt),
                                                   "run_key": key})
    # Finished transfer runs: one record per (config, checkpoint), stamped with the key the pipeline computes.
    metrics = {"moco": 0.31, "random": 0.12}
    for name, ap in metrics.items():
        ck = Checkpoint(name=name, path=ckpt if name == "moco" else None)
        if name == "moco":
            prepare_checkpoint(ck, work / "converted")
        write_record(record_path(results / "records", Path(VOC).stem, name), {
            "schema": SCHEMA, "status": "complete",
            "run_key": transfer_run_key(REPO / VOC, ck, data_dir=data, cfg_options={}, seed=0),
            "checkpoint": {"name": name, "sha256": sha256_file(ckpt) if name == "moco" else None},
            "config": {"name": Path(VOC).stem, "settings": {
                "detector": "Faster R-CNN", "backbone": "R18", "bn_mode": "frozen", "norm_type": "BN",
                "train_scale": [192, 144], "test_scale": [192, 144], "train_sets": ["VOC2007 trainval"],
                "test_set": "VOC2007 test", "epochs": 1, "lr": 0.01, "batch_per_process": 2, "world_size": 1,
                "data_root": str(data)}},
            "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
            "metrics": {"pascal_voc/AP50": ap, "pascal_voc/recall": ap + 0.2}})
    path = _config(tmp_path, f"data_dir={str(data)!r}\nwork_dir={str(work)!r}\nresults_dir={str(results)!r}\n"
                             f"pretrain=[dict(name='moco', config={entry['config']!r}{pretrain_options})]\n"
                             f"random_init=True\nbn_modes=['frozen']\nsuites=['voc']\nsuite_scale='demo'\n"
                             f"{transfer_options}")
    return path, metrics


class _Started(Exception):
    pass


def _no_subprocess(monkeypatch) -> list:
    started: list = []

    def refuse(argv, *a, **k):
        started.append(argv)
        raise _Started(" ".join(map(str, argv)))

    monkeypatch.setattr(subprocess, "Popen", refuse)
    return started


def test_second_run_reuses_every_finished_stage(tmp_path, monkeypatch, capsys):
    path, metrics = _finished_pipeline(tmp_path)
    _no_subprocess(monkeypatch)
    out = run_pipeline(path)
    printed = capsys.readouterr().out
    assert "pretrain moco: finished" in printed and printed.count("finished record found; reused") == 2
    assert len(list((tmp_path / "work" / "converted").glob("*.pth"))) == 1  # converted once, keyed by sha256
    table = (tmp_path / "results" / "tables.md").read_text()
    for name, ap in metrics.items():
        assert f"| {name}" in table and f"{100 * ap:.1f}" in table and f"{100 * (ap + 0.2):.1f}" in table
    assert {"markdown", "csv", "latex"} == set(out["tables"])


def test_changed_pretraining_settings_train_fresh(tmp_path, monkeypatch):
    """Finding 2: the pipeline reused a 5-epoch pretraining checkpoint after max_epochs became 7."""
    path, _ = _finished_pipeline(tmp_path, pretrain_options=", cfg_options={'train_cfg.max_epochs': 7}")
    started = _no_subprocess(monkeypatch)
    with pytest.raises(_Started):
        run_pipeline(path)
    (argv,) = started
    assert argv[3] == "pretrain" and "train_cfg.max_epochs=7" in argv and "--resume" not in argv
    old, new = sorted((tmp_path / "work" / "pretrain" / "moco").iterdir(), key=lambda p: (p / "stage.json").exists())
    assert argv[argv.index("--work-dir") + 1] == str(old)  # a fresh folder of its own; the 5-epoch run is kept
    assert (new / "epoch_5.pth").is_file()


@pytest.mark.parametrize("change", ["seed = 1\n", "transfer_cfg_options = {'optim_wrapper.optimizer.lr': 0.05}\n"])
def test_changed_transfer_settings_rerun_the_transfer(tmp_path, monkeypatch, change):
    path, _ = _finished_pipeline(tmp_path, transfer_options=change)
    started = _no_subprocess(monkeypatch)
    with pytest.raises(_Started):
        run_pipeline(path)
    assert started[0][3] == "transfer"


def test_a_second_pipeline_on_the_same_work_dir_is_refused(tmp_path):
    from mixbench.base.locks import work_dir_lock

    path = _config(tmp_path, f"pretrain=[]\nsuites=['voc']\nbn_modes=['frozen']\nsuite_scale='demo'\n"
                             f"data_dir='d'\nwork_dir={str(tmp_path / 'work')!r}\nresults_dir='r'\n")
    with work_dir_lock(tmp_path / "work"):
        with pytest.raises(PipelineError, match="work: another run holds this work dir"):
            run_pipeline(path)


def test_sigterm_stops_the_running_jobs_and_their_children(tmp_path):
    """Finding 7: a killed pipeline left its jobs running as orphans. Here run_jobs runs a job that starts a
    grandchild (as torchrun does); SIGTERM to the pipeline process must end both."""
    import os
    import signal
    import sys
    import time

    pids = tmp_path / "pids.txt"
    job = ("import subprocess, sys, time, os; "
           "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
           f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{g.pid}}'); time.sleep(120)")
    parent = (
        "import sys, pathlib, mixbench.pipeline as p\n"
        "real = p.start_in_own_group\n"
        f"p.start_in_own_group = lambda argv, **kw: real([sys.executable, '-c', {job!r}], **kw)\n"
        f"p.run_jobs([p.Job('sleeper', ['x'], pathlib.Path({str(tmp_path / 'job.log')!r}))], 1, 1)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.time() + 60
    while not (pids.is_file() and len(pids.read_text().split()) == 2):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else "no job"
        time.sleep(0.1)
    child, grandchild = map(int, pids.read_text().split())
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "stopping 1 running job(s)" in out

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    for pid in (child, grandchild):
        for _ in range(50):
            if not alive(pid):
                break
            time.sleep(0.1)
        assert not alive(pid), f"pid {pid} outlived the pipeline"
