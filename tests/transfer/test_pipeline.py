"""The pipeline reuses finished stages (pretraining marker, conversion cache, run records) and only tabulates; it
runs one transfer per seed, stops what a dead pipeline left and ends cleanly on SIGINT/SIGTERM at any point."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from mixbench.base.io import atomic_write_json, sha256_file
from mixbench.base.runkey import key_id
from mixbench.jobs import Job, LocalExecutor
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
    base = "pretrain=[]\nsuites=['voc']\nbn_modes=['frozen']\ndata_dir='d'\nwork_dir='w'\nresults_dir='r'\n"
    for seeds, shown in [("seeds=[]", r"\[\]"), ("seeds=[0, 0]", r"\[0, 0\]"), ("seeds=0", "0")]:
        with pytest.raises(PipelineError, match=f"pipe.py: seeds must be a non-empty list of distinct integers, "
                                                f"not {shown}$"):
            load_pipeline_config(_config(tmp_path, base + seeds + "\n"))
    with pytest.raises(PipelineError, match="pipe.py: give `seeds` .* or `seed`, not both"):
        load_pipeline_config(_config(tmp_path, base + "seed=0\nseeds=[1]\n"))


def _finished_pipeline(tmp_path: Path, pretrain_options: str = "", transfer_options: str = "") -> tuple[Path, dict]:
    """A pipeline config whose stages all look finished (seed 0) under the keys of the ORIGINAL settings."""
    from mixbench.pipeline import pretrain_key
    from mixbench.transfer.checkpoint import Checkpoint, prepare_checkpoint
    from mixbench.transfer.runner import transfer_run_key

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
        run_key = transfer_run_key(REPO / VOC, ck, data_dir=data, cfg_options={}, seed=0)
        write_record(record_path(results / "records", Path(VOC).stem, name, key_id(run_key)), {
            "schema": SCHEMA, "status": "complete", "run_key": run_key, "run_key_id": key_id(run_key), "seed": 0,
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
        argv = argv[argv.index("mixbench.cli") + 1:]  # the job's sub-command, under its supervisor
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
    assert {"markdown", "csv", "latex", "plot"} == set(out["tables"])
    assert out["tables"]["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_changed_pretraining_settings_train_fresh(tmp_path, monkeypatch):
    """A 5-epoch pretraining checkpoint is not reused once max_epochs is 7: that run trains fresh beside it."""
    path, _ = _finished_pipeline(tmp_path, pretrain_options=", cfg_options={'train_cfg.max_epochs': 7}")
    started = _no_subprocess(monkeypatch)
    with pytest.raises(_Started):
        run_pipeline(path)
    (argv,) = started
    assert argv[0] == "pretrain" and "train_cfg.max_epochs=7" in argv and "--resume" not in argv
    old, new = sorted((tmp_path / "work" / "pretrain" / "moco").iterdir(), key=lambda p: (p / "stage.json").exists())
    assert argv[argv.index("--work-dir") + 1] == str(old)  # a fresh folder of its own; the 5-epoch run is kept
    assert (new / "epoch_5.pth").is_file()


@pytest.mark.parametrize("change", ["seeds = [1]\n", "transfer_cfg_options = {'optim_wrapper.optimizer.lr': 0.05}\n"])
def test_changed_transfer_settings_rerun_the_transfer(tmp_path, monkeypatch, change):
    path, _ = _finished_pipeline(tmp_path, transfer_options=change)
    started = _no_subprocess(monkeypatch)
    with pytest.raises(_Started):
        run_pipeline(path)
    assert started[0][0] == "transfer"


def test_a_second_pipeline_on_the_same_work_dir_is_refused(tmp_path):
    from mixbench.base.locks import work_dir_lock

    path = _config(tmp_path, f"pretrain=[]\nsuites=['voc']\nbn_modes=['frozen']\nsuite_scale='demo'\n"
                             f"data_dir='d'\nwork_dir={str(tmp_path / 'work')!r}\nresults_dir='r'\n")
    with work_dir_lock(tmp_path / "work"):
        with pytest.raises(PipelineError, match="work: another run holds this work dir"):
            run_pipeline(path)


def test_each_seed_is_a_transfer_run_of_its_own(tmp_path, monkeypatch, capsys):
    """Seed 0's records exist; seeds [0, 1] runs only seed 1, once per checkpoint, and reuses seed 0."""
    path, _ = _finished_pipeline(tmp_path, transfer_options="seeds = [0, 1]\n")
    started: list[Job] = []
    monkeypatch.setattr(LocalExecutor, "start", lambda self, job, env: started.append(job))
    monkeypatch.setattr(LocalExecutor, "poll", lambda self, job: 0)  # every job "finishes" at once
    run_pipeline(path)
    assert capsys.readouterr().out.count("seed 0: finished record found; reused") == 2
    assert sorted(j.label.rsplit(" / ", 1)[1] for j in started) == ["moco seed 1", "random seed 1"]
    for job in started:
        assert job.argv[job.argv.index("--seed") + 1] == "1"


def test_seeds_per_job_runs_several_seeds_of_one_run_in_one_job(tmp_path, monkeypatch, capsys):
    """Seeds [0, 1, 2, 3] with seed 0 finished and two seeds per job: jobs of seeds (1, 2) and (3) per checkpoint,
    each log in the work dir of its first run."""
    path, _ = _finished_pipeline(tmp_path, transfer_options="seeds = [0, 1, 2, 3]\nseeds_per_job = 2\n")
    started: list[Job] = []
    monkeypatch.setattr(LocalExecutor, "start", lambda self, job, env: started.append(job))
    monkeypatch.setattr(LocalExecutor, "poll", lambda self, job: 0)
    run_pipeline(path)
    assert capsys.readouterr().out.count("seed 0: finished record found; reused") == 2
    assert sorted(j.label.rsplit(" / ", 1)[1] for j in started) == [
        "moco seed 3", "moco seeds 1 2", "random seed 3", "random seeds 1 2"]
    for job in started:
        seeds = job.argv[job.argv.index("--seeds") + 1:job.argv.index("--seeds") + 3] if "--seeds" in job.argv \
            else [job.argv[job.argv.index("--seed") + 1]]
        assert seeds in (["1", "2"], ["3"])
        name = "mixbench.transfer.seeds-1-2.log" if len(seeds) == 2 else "mixbench.transfer.log"
        run_dir = job.log.parent  # the first seed's run: its run key id names the folder and its record
        assert job.log.name == name and (run_dir.parent.name, run_dir.parent.parent.name) == (
            job.label.rsplit(" / ", 1)[1].split()[0], Path(VOC).stem)
        records = tmp_path / "results" / "records" / Path(VOC).stem / run_dir.parent.name
        assert not (records / f"{run_dir.name}.json").exists()  # a run still to do, not a finished one


def test_seeds_per_suite_and_their_errors(tmp_path):
    base = ("pretrain=[]\nsuites=['voc', 'coco']\nbn_modes=['frozen']\ndata_dir='d'\nwork_dir='w'\n"
            "results_dir='r'\n")
    cfg = load_pipeline_config(_config(tmp_path, base + "seeds=dict(voc=[0, 1, 2, 3, 4], coco=[0, 1, 2])\n"))
    assert cfg["seeds"] == {"voc": [0, 1, 2, 3, 4], "coco": [0, 1, 2]} and cfg["seeds_per_job"] == 1
    assert load_pipeline_config(_config(tmp_path, base + "seeds=[3, 4]\n"))["seeds"] == {"voc": [3, 4],
                                                                                         "coco": [3, 4]}
    for seeds, message in [("dict(voc=[0])", r"missing \['coco'\]"),
                           ("dict(voc=[0], coco=[0], kitti=[0])", r"unknown \['kitti'\]"),
                           ("dict(voc=[0], coco=[1, 1])", r"seeds\['coco'\] must be a non-empty list")]:
        with pytest.raises(PipelineError, match=f"pipe.py: .*{message}"):
            load_pipeline_config(_config(tmp_path, base + f"seeds={seeds}\n"))
    for n in ("0", "2.5", "True"):
        with pytest.raises(PipelineError, match=f"pipe.py: seeds_per_job must be a positive integer, not {n}$"):
            load_pipeline_config(_config(tmp_path, base + f"seeds_per_job={n}\n"))


def test_a_rerun_stops_the_jobs_a_killed_pipeline_left(tmp_path, monkeypatch, capsys):
    """A job listed in the work dir's jobs.json by a pipeline that is gone is stopped, and named, before any stage."""
    path, _ = _finished_pipeline(tmp_path)

    class Sleeper(LocalExecutor):
        def command(self, job: Job) -> list[str]:
            return [sys.executable, "-c", "import time; time.sleep(300)"]

    import os

    left = Job("transfer voc frozen x / moco seed 0", [], tmp_path / "left.log")
    Sleeper(tmp_path / "work").start(left, dict(os.environ))  # its pipeline "died": nobody polls it
    try:
        _no_subprocess(monkeypatch)
        run_pipeline(path)
        out = capsys.readouterr().out
        assert f"{left.label}: still running from a run that died" in out and f"group {left.handle.pid}" in out
        assert left.handle.wait(timeout=30) != 0
    finally:
        if left.handle.poll() is None:
            os.killpg(left.handle.pid, signal.SIGKILL)


# Runs the pipeline CLI with hashing (the pretraining stage's reuse check) or conversion made slow, so that a
# signal arrives in the middle of it; the conversion writes its output through atomic_write as the real one does.
INTERRUPTED = """
import sys, time
from pathlib import Path
import mixbench.jobs, mixbench.transfer.checkpoint as checkpoint
from mixbench.base.io import atomic_write
from mixbench.cli import main

config, stage, ready = sys.argv[1:]

def slow_hash(path):
    Path(ready).touch(); time.sleep(300)

def slow_convert(ckpt, cache_dir):
    def write(f):
        f.write(b"half"); f.flush(); Path(ready).touch(); time.sleep(300)
    atomic_write(Path(cache_dir) / "new.pth", write)

if stage == "hash":
    mixbench.jobs.sha256_file = slow_hash
else:
    checkpoint.prepare_checkpoint = slow_convert
sys.exit(main(["pipeline", config]))
"""


@pytest.mark.parametrize("stage,sig", [("hash", signal.SIGINT), ("convert", signal.SIGTERM)])
def test_a_signal_between_jobs_ends_the_run_in_one_line(tmp_path, stage, sig):
    import time

    path, _ = _finished_pipeline(tmp_path)
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED, str(path), stage, str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"never reached the {stage} step"
        time.sleep(0.1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.splitlines()[-1] == (f"mixbench pipeline: interrupted (received {sig.name}); running jobs stopped, "
                                    "rerun to resume")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.name == "new.pth"]


def test_tables_say_when_and_where_their_records_were_measured():
    from mixbench.pipeline import measured_on

    cpu = {"machine": "x86_64", "processor": "", "cpu_count": 2, "cuda": False}
    gpu = {"machine": "x86_64", "processor": "", "cpu_count": 16, "cuda": True, "gpus": ["NVIDIA H200"]}
    records = [{"finished": "2026-12-03T19:00:00+00:00", "hardware": cpu},
               {"finished": "2026-12-01T08:00:00+00:00", "hardware": cpu}]
    assert measured_on(records) == "measured 2026-12-01 to 2026-12-03 on x86_64 2 cores, no GPU"
    assert measured_on([{"finished": "2026-12-02T00:00:00", "hardware": gpu}]) == (
        "measured 2026-12-02 on x86_64 16 cores, NVIDIA H200")
    capped = dict(cpu, cpu_kernels="DEFAULT", onednn_max_cpu_isa="SSE41")  # as `make demo-isa` runs
    assert measured_on([{"finished": "2026-12-02T00:00:00", "hardware": capped}]) == (
        "measured 2026-12-02 on x86_64 2 cores, no GPU, torch CPU kernels DEFAULT, oneDNN capped at SSE41")


def test_records_state_the_cpu_kernels_torch_runs() -> None:
    """hardware() against torch's own report, and the oneDNN cap read from the variable oneDNN reads."""
    import os

    import torch

    from mixbench.base.provenance import hardware

    hw = hardware()
    assert hw["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    assert hw["onednn_max_cpu_isa"] == (os.environ.get("ONEDNN_MAX_CPU_ISA") or None)
