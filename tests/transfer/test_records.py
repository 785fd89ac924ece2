"""Run records: one file per run key, written atomically, one schema for writers and readers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mixbench.base.runkey import key_id
from mixbench.transfer.records import (
    SCHEMA,
    RecordError,
    check_record,
    collect_records,
    is_complete,
    load_record,
    metrics_status,
    record_path,
    write_record,
)

SETTINGS = {"detector": "Faster R-CNN", "suite": "voc", "backbone": "R18", "bn_mode": "frozen", "norm_type": "BN",
            "train_scale": [224, 160], "test_scale": [224, 160], "train_sets": ["VOC2007 trainval"],
            "test_set": "VOC2007 test", "epochs": 2, "lr": 0.01, "batch_per_process": 2, "world_size": 1,
            "data_root": "data/demo/voc/"}


def run_key(seed: int = 0, sha: str | None = "abc") -> dict:
    return {"checkpoint_sha256": sha, "config": "cfg", "config_sha256": f"d{seed}", "data_root": "/data",
            "seed": seed, "world_size": 1}


def rec(seed: int = 0, status: str = "complete", metrics: dict | None = None, **extra) -> dict:
    key = run_key(seed)
    return {"schema": SCHEMA, "status": status, "run_key": key, "run_key_id": key_id(key), "seed": seed,
            "checkpoint": {"name": "moco", "sha256": "abc"}, "config": {"name": "cfg", "settings": dict(SETTINGS)},
            "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
            "metrics": {"pascal_voc/AP50": 0.5} if metrics is None else metrics, **extra}


def path_of(tmp_path: Path, r: dict) -> Path:
    return record_path(tmp_path, r["config"]["name"], r["checkpoint"]["name"], r["run_key_id"])


def test_two_seeds_keep_their_own_records(tmp_path):
    first, second = rec(0), rec(1, metrics={"pascal_voc/AP50": 0.7})
    assert path_of(tmp_path, first) != path_of(tmp_path, second)
    write_record(path_of(tmp_path, first), first)
    write_record(path_of(tmp_path, second), second)
    assert path_of(tmp_path, first) == tmp_path / "cfg" / "moco" / f"{key_id(run_key(0))}.json"
    found = collect_records([tmp_path])
    assert sorted(r["seed"] for r in found.records) == [0, 1] and found.skipped == []
    assert is_complete(path_of(tmp_path, first), run_key(0)) and is_complete(path_of(tmp_path, second), run_key(1))


def test_crash_during_write_keeps_the_old_record(tmp_path, monkeypatch):
    path = path_of(tmp_path, rec())
    write_record(path, rec())
    before = path.read_bytes()

    def crash(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", crash)  # fails after the new bytes are written, before the rename
    new = rec(metrics={"pascal_voc/AP50": 0.9})
    with pytest.raises(OSError, match="simulated"):
        write_record(path, new)
    assert path.read_bytes() == before  # the first record is whole
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    monkeypatch.undo()
    write_record(path, new)
    assert load_record(path)["metrics"] == new["metrics"]


BAD = [
    ("nan metric", rec(metrics={"pascal_voc/AP50": float("nan")}), "'pascal_voc/AP50' is nan, not finite"),
    ("inf metric", rec(metrics={"pascal_voc/AP50": float("inf")}), "not finite"),
    ("string metric", rec(metrics={"pascal_voc/AP50": "0.5"}), "'pascal_voc/AP50' is '0.5', not a number"),
    ("bool metric", rec(metrics={"pascal_voc/AP50": True}), "is True, not a number"),
    ("empty metrics", rec(metrics={}), "a complete record has no metrics"),
    ("unknown status", rec(status="done"), "status 'done' is not one of"),
    ("invalid without reason", rec(status="invalid"), "no invalid_reason"),
    ("checkpoint name", {**rec(), "checkpoint": {"name": 3}}, "checkpoint.name is int, not str"),
    ("settings missing", {**rec(), "config": {"name": "cfg"}}, "config.settings missing"),
    ("settings key", {**rec(), "config": {"name": "cfg", "settings": {**SETTINGS, "epochs": "2"}}},
     "config.settings.epochs is str, not int"),
    ("scale", {**rec(), "config": {"name": "cfg", "settings": {**SETTINGS, "test_scale": [224]}}},
     "test_scale is [224], not [width, height]"),
    ("run key id", {**rec(), "run_key_id": "0" * 16}, "is not the id of its run_key"),
    ("seed", {**rec(), "seed": 1}, "seed 1 differs from the run key's seed 0"),
    ("seed type", {**rec(), "seed": "0"}, "seed is str, not int"),
    ("no run key", {k: v for k, v in rec().items() if k != "run_key"}, "run_key missing"),
    ("foreign", {"schema": "mixbench.transfer.record/1"}, "foreign schema 'mixbench.transfer.record/1'"),
]


@pytest.mark.parametrize("case, record, why", BAD, ids=[c for c, _, _ in BAD])
def test_one_schema_refuses_bad_records_on_write_and_read(tmp_path, case, record, why):
    path = tmp_path / "r.json"
    with pytest.raises(RecordError, match="r.json: not a valid run record: .*" + why.replace("[", r"\[")
                       .replace("]", r"\]")):
        write_record(path, record)
    assert not path.exists()
    path.write_text(json.dumps(record))  # the same record written by something else: refused when read
    with pytest.raises(RecordError, match="r.json: not a valid run record"):
        load_record(path)
    assert not is_complete(path, record.get("run_key") or run_key())


def test_valid_records_pass_the_schema():
    assert check_record(rec()) == []
    assert check_record(rec(status="invalid", metrics={"pascal_voc/AP50": float("nan")},
                            invalid_reason="non-finite metrics")) == []  # a diverged run may hold NaN
    assert check_record({**rec(), "checkpoint": {"name": "random", "sha256": None}}) == []


def test_collect_skips_and_names_bad_files_and_strict_stops(tmp_path):
    good = rec()
    write_record(path_of(tmp_path, good), good)
    (tmp_path / "foreign.json").write_text(json.dumps({"schema": "someone.else/3", "x": 1}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "nan.json").write_text(json.dumps(rec(metrics={"pascal_voc/AP50": float("nan")})))
    found = collect_records([tmp_path])
    assert found.records == [good] and found.files == [path_of(tmp_path, good)]
    reasons = {p.name: why for p, why in found.skipped}
    assert sorted(reasons) == ["broken.json", "foreign.json", "nan.json"]
    assert reasons["foreign.json"].startswith("not a valid run record: foreign schema 'someone.else/3'")
    assert reasons["broken.json"].startswith("not a readable JSON file")
    assert "not finite" in reasons["nan.json"]
    with pytest.raises(RecordError, match="broken.json: not a readable JSON file"):
        collect_records([tmp_path], strict=True)
    with pytest.raises(FileNotFoundError, match="nope"):
        collect_records([tmp_path / "nope"])


def test_is_complete_needs_the_same_run_key(tmp_path):
    key = run_key()
    path = path_of(tmp_path, rec())
    assert not is_complete(path, key)
    write_record(path, rec())
    assert is_complete(path, key)
    for field, other in [("checkpoint_sha256", "other-sha"), ("config_sha256", "d2"), ("data_root", "/other"),
                         ("world_size", 2)]:
        assert not is_complete(path, {**key, field: other}), field  # any change reruns
    write_record(path, rec(status="failed"))
    assert not is_complete(path, key)


def test_metrics_status_marks_non_finite_and_empty_metrics_invalid():
    assert metrics_status({"pascal_voc/AP50": 0.0, "coco/bbox_mAP_s": -1.0}) == ("complete", None)
    status, why = metrics_status({"pascal_voc/AP50": float("nan"), "pascal_voc/recall": 0.5})
    assert status == "invalid" and "pascal_voc/AP50" in why and "diverged" in why
    status, why = metrics_status({})
    assert status == "invalid" and "no metrics" in why


def test_provenance_states_commit_hardware_and_versions():
    from importlib import metadata

    from mixbench.base.provenance import provenance

    got = provenance()
    assert got["hardware"]["cpu_count"] == os.cpu_count()
    assert got["packages"]["torch"] == metadata.version("torch") and got["packages"]["mixbench"]
    assert got["git_commit"] is None or len(got["git_commit"].removesuffix("-dirty")) == 40


def test_transfer_seeds_runs_each_seed_as_its_own_run(monkeypatch, tmp_path):
    import mixbench.transfer.runner as runner
    from mixbench.cli import main

    calls = []
    monkeypatch.setattr(runner, "run_transfer", lambda config, ckpt, **kw: calls.append((ckpt.name, kw["seed"])))
    config = tmp_path / "detector.py"  # run_transfer is replaced: only the file's existence is checked
    config.write_text("")
    assert main(["transfer", "random", "--config", str(config), "--seeds", "0", "1", "2", "1",
                 "--records-dir", str(tmp_path / "rec"), "--work-root", str(tmp_path / "wd")]) == 0
    assert calls == [("random", 0), ("random", 1), ("random", 2)]
    with pytest.raises(SystemExit):
        main(["transfer", "random", "--seed", "3", "--seeds", "1", "2"])  # one or the other
