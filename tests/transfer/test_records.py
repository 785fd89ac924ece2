"""Run records are written atomically and rejected with a clear error when they are not records."""

from __future__ import annotations

import json
import os

import pytest

from mixbench.transfer.records import SCHEMA, collect_records, is_complete, load_record, record_path, write_record


def rec(sha: str | None = "abc", status: str = "complete") -> dict:
    return {"schema": SCHEMA, "status": status, "checkpoint": {"name": "moco", "sha256": sha},
            "config": {"name": "cfg"}, "suite": "voc", "detector": "Faster R-CNN", "bn_mode": "frozen",
            "metrics": {"pascal_voc/AP50": 0.5}}


def test_crash_during_write_keeps_the_old_record(tmp_path, monkeypatch):
    path = record_path(tmp_path, "cfg", "moco")
    write_record(path, rec())
    before = path.read_bytes()

    def crash(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", crash)  # fails after the new bytes are written, before the rename
    new = rec()
    new["metrics"] = {"pascal_voc/AP50": 0.9}
    with pytest.raises(OSError, match="simulated"):
        write_record(path, new)
    assert path.read_bytes() == before  # the old record is whole
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    monkeypatch.undo()
    write_record(path, new)
    assert load_record(path)["metrics"] == new["metrics"]


def test_incomplete_or_foreign_records(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(ValueError, match="lacks"):
        write_record(path, {"schema": SCHEMA})
    path.write_text("{not json")
    with pytest.raises(ValueError, match="r.json: not a readable run record"):
        load_record(path)
    path.write_text(json.dumps({"schema": "x"}))
    with pytest.raises(ValueError, match="r.json: not a mixbench transfer run record"):
        collect_records([tmp_path])
    with pytest.raises(FileNotFoundError, match="nope"):
        collect_records([tmp_path / "nope"])


def test_is_complete_needs_the_same_run_key(tmp_path):
    key = {"checkpoint_sha256": "abc", "config": "cfg", "config_sha256": "d1", "data_root": "/data", "seed": 0,
           "world_size": 1}
    path = record_path(tmp_path, "cfg", "moco")
    assert not is_complete(path, key)
    write_record(path, {**rec(), "run_key": key})
    assert is_complete(path, key)
    for field, other in [("checkpoint_sha256", "other-sha"), ("config_sha256", "d2"), ("data_root", "/other"),
                         ("seed", 1), ("world_size", 2)]:
        assert not is_complete(path, {**key, field: other}), field  # any change reruns
    write_record(path, rec())  # a record from before run keys
    assert not is_complete(path, key)
    write_record(path, {**rec(status="failed"), "run_key": key})
    assert not is_complete(path, key)


def test_metrics_status_marks_non_finite_metrics_invalid():
    from mixbench.transfer.records import metrics_status

    assert metrics_status({"pascal_voc/AP50": 0.0, "coco/bbox_mAP_s": -1.0}) == ("complete", None)
    status, why = metrics_status({"pascal_voc/AP50": float("nan"), "pascal_voc/recall": 0.5})
    assert status == "invalid" and "pascal_voc/AP50" in why and "diverged" in why
