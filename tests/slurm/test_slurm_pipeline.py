"""``mixbench pipeline --executor slurm`` and ``mixbench transfer --executor slurm`` as a user runs them, on the
one-node cluster: the demo's stages at test size give the local executor's tables; a pipeline stopped by Ctrl-C or
killed is followed by its rerun, no job submitted twice; ``--status`` and ``--cancel``; a failed job named while an
independent one completes; a two-task gloo transfer; the full-scale pipeline config, shrunk by ``--cfg-options`` only,
end to end."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch
from cluster_runs import (
    ACTIVE,
    FULL_SCALE,
    TINY_TRANSFER,
    Running,
    cancel_recorded,
    full_scale_at_test_size,
    job_records,
    mixbench,
    queued,
    record_metrics,
    state,
    submitted_since,
    table_body,
    tiny_pipeline,
    tiny_pretrain_options,
    wait_for,
)
from tiny_voc import DEMO_VOC

from mixbench.base.safe_load import safe_torch_load

pytestmark = pytest.mark.slurm

PRETRAIN = "pretrain moco"


@pytest.fixture(scope="module")
def data_root(synthetic_root) -> Path:
    return synthetic_root["imagenet"].parent


@pytest.fixture(scope="module")
def local_run(data_root, tmp_path_factory) -> Path:
    """The tiny pipeline run by the local executor (the reference)."""
    folder = tmp_path_factory.mktemp("local")
    done = mixbench("pipeline", str(tiny_pipeline(folder, data_root)), "--executor", "local", timeout_s=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def _running(work: Path, prefix: str, count: int) -> list[str]:
    """Ids of the ``count`` jobs whose labels start with ``prefix``, once all are recorded and one runs."""
    ids = [r["job_id"] for label, r in job_records(work).items() if label.startswith(prefix)]
    return ids if len(ids) == count and "RUNNING" in {state(i) for i in ids} else []


@pytest.fixture(scope="module")
def slurm_run(data_root, tmp_path_factory) -> dict:
    """The tiny pipeline on Slurm, stopped twice: Ctrl-C while pretraining runs, then kill -9 while the transfers
    run; the third run goes to the end. What each step showed, for the tests below."""
    folder = tmp_path_factory.mktemp("slurm")
    args = ("pipeline", str(tiny_pipeline(folder, data_root)), "--executor", "slurm")
    work, seen = folder / "work", {"folder": folder, "start": time.strftime("%Y-%m-%dT%H:%M:%S")}
    first = second = None
    try:
        first = Running(folder / "first", *args)
        [seen["pretrain"]] = wait_for("the pretraining job running", lambda: _running(work, PRETRAIN, 1), 300,
                                      first)
        seen["sigint"] = first.end(signal.SIGINT)
        seen["left"] = state(seen["pretrain"])
        seen["sigint_err"] = first.err.read_text()

        second = Running(folder / "second", *args)
        seen["transfers"] = wait_for("the transfer jobs running", lambda: _running(work, "transfer", 2), 600, second)
        second.end(signal.SIGKILL)
        seen["after_kill"] = {i: state(i) for i in seen["transfers"]}
        seen["second_out"] = second.out.read_text()
        seen["status"] = mixbench(*args, "--status", timeout_s=120)

        seen["third"] = mixbench(*args, timeout_s=600)
        seen["records"] = job_records(work)
        seen["submitted"] = submitted_since(seen["start"])
    finally:
        for run in (first, second):
            if run is not None:
                run.kill()
        cancel_recorded(work)
    return seen


def _state_dict(pattern: str, folder: Path) -> dict[str, torch.Tensor]:
    [path] = folder.glob(pattern)
    return safe_torch_load(path)["state_dict"]


def test_the_pipeline_on_slurm_gives_the_tables_of_the_local_executor(slurm_run, local_run):
    third = slurm_run["third"]
    assert third.returncode == 0, third.stdout + third.stderr
    slurm_results, local_results = slurm_run["folder"] / "results", local_run / "results"
    assert table_body(slurm_results) == table_body(local_results)
    metrics = record_metrics(slurm_results)
    assert metrics == record_metrics(local_results) and len(metrics) == 2  # random init and moco, seed 0
    # The tiny runs score 0 AP, so the tables alone cannot tell runs apart: the trained weights can.
    for pattern in ("work/pretrain/moco/*/epoch_1.pth", "work/transfer/*/moco/*/epoch_1.pth",
                    "work/transfer/*/random/*/epoch_1.pth"):
        ours, reference = _state_dict(pattern, slurm_run["folder"]), _state_dict(pattern, local_run)
        assert ours.keys() == reference.keys()
        assert all(torch.equal(ours[k], reference[k]) for k in ours), pattern


def test_ctrl_c_leaves_the_slurm_jobs_running_and_says_how_to_follow_or_cancel_them(slurm_run):
    assert slurm_run["sigint"] == 130, slurm_run["sigint_err"]
    assert slurm_run["left"] in ACTIVE  # still queued or running once the pipeline has exited
    last = slurm_run["sigint_err"].splitlines()[-1]
    config = str(slurm_run["folder"] / "pipe.py")
    assert "interrupted (received SIGINT)" in last and "Slurm jobs go on" in last
    assert f"mixbench pipeline {config} --status" in last and f"mixbench pipeline {config} --cancel" in last


def test_reruns_follow_the_jobs_of_a_stopped_or_killed_pipeline_and_submit_none_twice(slurm_run):
    assert f"{PRETRAIN}: following Slurm job {slurm_run['pretrain']}" in slurm_run["second_out"]
    assert all(s in ACTIVE | {"COMPLETED"} for s in slurm_run["after_kill"].values()), slurm_run["after_kill"]
    records = slurm_run["records"]
    assert len(records) == 3  # pretraining and two transfers
    # Accounting's own list of what was submitted since the first run started: one job per name, the recorded one.
    submitted = slurm_run["submitted"]
    assert all(len(ids) == 1 for ids in submitted.values()), submitted
    assert sorted(ids[0] for ids in submitted.values()) == sorted(r["job_id"] for r in records.values())


def test_status_lists_each_job_with_its_slurm_state(slurm_run):
    status = slurm_run["status"]
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    for label, record in slurm_run["records"].items():
        [line] = [line for line in lines if f" {record['job_id']} " in f" {line} "]
        assert label in line and record["log"] in line
        expected = {"COMPLETED"} if label == PRETRAIN else ACTIVE | {"COMPLETED"}
        assert set(line.split()) & expected, line


def test_cancel_ends_the_jobs_a_stopped_pipeline_left(data_root, tmp_path):
    pretrain = {"moco": tiny_pretrain_options(data_root, epochs=500)}  # runs until cancelled
    args = ("pipeline", str(tiny_pipeline(tmp_path, data_root, pretrain)), "--executor", "slurm")
    run = Running(tmp_path / "run", *args)
    try:
        [job_id] = wait_for("the pretraining job running", lambda: _running(tmp_path / "work", PRETRAIN, 1), 300,
                            run)
        assert run.end(signal.SIGTERM) == 130, run.output()
        status = mixbench(*args, "--status", timeout_s=120)
        [line] = [line for line in status.stdout.splitlines() if f" {job_id} " in line]
        assert "RUNNING" in line.split() and PRETRAIN in line
        cancel = mixbench(*args, "--cancel", timeout_s=120)
        assert cancel.returncode == 0 and f"Slurm job {job_id}" in cancel.stdout, cancel.stdout + cancel.stderr
        wait_for("the job gone from the queue", lambda: not queued([job_id]), 60)
        assert state(job_id) == "CANCELLED"
    finally:
        run.kill()
        cancel_recorded(tmp_path / "work")


def test_a_failed_job_ends_its_stage_naming_it_while_an_independent_job_completes(data_root, tmp_path):
    broken = dict(tiny_pretrain_options(data_root), **{"train_dataloader.dataset.root": str(tmp_path / "nothing")})
    config = tiny_pipeline(tmp_path, data_root, {"moco": tiny_pretrain_options(data_root), "broken": broken})
    try:
        done = mixbench("pipeline", str(config), "--executor", "slurm", timeout_s=600)
    finally:
        cancel_recorded(tmp_path / "work")
    records = job_records(tmp_path / "work")
    failed, independent = records["pretrain broken"], records[PRETRAIN]
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("mixbench pipeline: error: pretrain failed: pretrain broken")
    assert f"Slurm job {failed['job_id']} ended FAILED" in error and "reason" in error and failed["log"] in error
    assert state(independent["job_id"]) == "COMPLETED"
    assert list((tmp_path / "work" / "pretrain" / "moco").glob("*/epoch_1.pth"))


def test_transfer_runs_a_two_task_gloo_job_through_the_slurm_executor(data_root, tmp_path):
    done = mixbench("transfer", "random", "--config", str(DEMO_VOC), "--data-root", str(data_root),
                    "--records-dir", str(tmp_path / "records"), "--work-root", str(tmp_path / "work"),
                    "--executor", "slurm", "--slurm", "tasks_per_node=2", "timeout_min=15", "max_requeues=0",
                    "--cfg-options", *[f"{k}={v}" for k, v in TINY_TRANSFER.items()], timeout_s=600)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        cancel_recorded(tmp_path / "work")
    [job] = job_records(tmp_path / "work").values()
    assert state(job["job_id"]) == "COMPLETED"
    [path] = (tmp_path / "records").rglob("*.json")
    record = json.loads(path.read_text())
    assert (record["launcher"], record["world_size"], record["config"]["settings"]["world_size"]) == ("slurm", 2, 2)
    assert set(record["metrics"]) == {"pascal_voc/AP50", "pascal_voc/mAP", "pascal_voc/recall"}


def _sacct(job_id: str) -> dict[str, str]:
    """What accounting holds of a job: its state, time limit and requested resources."""
    import subprocess

    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,Timelimit,ReqTRES,NTasks"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    state_, limit, tres, _ = out.strip().split("|")
    return {"State": state_, "Timelimit": limit, "ReqTRES": tres}


def _measured_rows(tables: str, block: str) -> list[str]:
    """The first-column entries of the measured rows of the markdown block titled ``block``."""
    text = tables.split(f"### {block}\n", 1)[1].split("\n### ", 1)[0]
    return sorted(line.split("|")[1].strip() for line in text.splitlines()
                  if line.startswith("| ") and line.rstrip(" |").endswith("measured"))


def test_the_full_scale_pipeline_config_runs_end_to_end_on_slurm(data_root, tmp_path):
    """configs/pipeline/moco_vs_mix_r50_in1k.py with one command, `--executor slurm`, its size cut by
    --cfg-options only: two pretrainings, three transfers (random init and both checkpoints), the tables."""
    done = mixbench("pipeline", str(FULL_SCALE), "--executor", "slurm", "--cfg-options",
                    *full_scale_at_test_size(tmp_path, data_root), timeout_s=600)
    try:
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        cancel_recorded(tmp_path / "work")
    config = "faster-rcnn_r50_fpn_frozen-bn_1x_voc0712"
    checkpoints = ["moco", "moco+gr", "random"]
    records = job_records(tmp_path / "work")
    assert sorted(records) == sorted(["pretrain moco", "pretrain moco+gr"] + [
        f"transfer voc frozen {config} / {name} seed 0" for name in checkpoints])
    for label, record in records.items():
        # each stage's own time limit, the shared request (1 CPU, 4 GB, no GPU), as the cluster recorded them
        asked = _sacct(record["job_id"])
        assert asked["State"] == "COMPLETED", (label, asked)
        assert asked["Timelimit"] == ("00:10:00" if label.startswith("pretrain") else "00:09:00"), (label, asked)
        assert set(asked["ReqTRES"].split(",")) >= {"cpu=1", "mem=4G", "node=1"}, asked
        assert "gpu" not in asked["ReqTRES"], asked
    results = tmp_path / "results"
    assert sorted(record_metrics(results)) == [(config, name, 0) for name in checkpoints]
    tables = (results / "tables.md").read_text()
    assert _measured_rows(tables, 'Table 7 layout: Faster R-CNN, PASCAL VOC, BN frozen ("Freeze BN")') == checkpoints
    # the paper's rows (paper_rows=True) beside them; no measured COCO or fine-tuned-BN block: those were cut
    assert "paper (Table 7b)" in tables and "paper (Table 8a)" in tables
    assert tables.count("| measured") == len(checkpoints)
