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


def test_is_complete_needs_same_content_and_config(tmp_path):
    path = record_path(tmp_path, "cfg", "moco")
    assert not is_complete(path, "abc", "cfg")
    write_record(path, rec())
    assert is_complete(path, "abc", "cfg")
    assert not is_complete(path, "other-sha", "cfg")  # same name, different checkpoint bytes: rerun
    assert not is_complete(path, "abc", "other-cfg")
    write_record(path, rec(status="failed"))
    assert not is_complete(path, "abc", "cfg")
