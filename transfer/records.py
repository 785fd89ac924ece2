"""Run records: one JSON file per transfer run, named by its run key, written atomically, checked by one schema.

A record is the only thing the tables read, so it carries everything needed to say where a number came from:
the checkpoint (name, file, sha256), the config (name, file, resolved key settings), the metrics as mmengine
reported them, the run key and seed, world size, wall time, and where it ran (:mod:`mixbench.base.provenance`).
:func:`check_record` is the one schema: :func:`write_record` refuses a record that fails it, and
:func:`load_record` / :func:`collect_records` refuse or skip (and name) a file that fails it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mixbench.base.io import atomic_write_json
from mixbench.base.runkey import key_id

__all__ = ["SCHEMA", "STATUSES", "Collected", "RecordError", "Skipped", "check_record", "collect_records",
           "is_complete", "load_record", "metrics_status", "record_path", "write_record"]

SCHEMA = "mixbench.transfer.record/2"
# complete: a measurement. invalid: the run finished but measured nothing usable (non-finite or no metrics; the
# record says why in ``invalid_reason``). failed: the run stopped with an error.
STATUSES = ("complete", "invalid", "failed")
_STR, _INT, _NUM, _LIST, _DICT = (str,), (int,), (int, float), (list,), (dict,)
REQUIRED: dict[str, tuple[type, ...]] = {
    "schema": _STR, "status": _STR, "checkpoint": _DICT, "config": _DICT, "suite": _STR, "detector": _STR,
    "bn_mode": _STR, "metrics": _DICT, "run_key": _DICT, "run_key_id": _STR, "seed": _INT}
# The resolved settings a table states in its protocol line (transfer.tables.protocol).
SETTINGS: dict[str, tuple[type, ...]] = {
    "detector": _STR, "backbone": _STR, "bn_mode": _STR, "norm_type": _STR, "train_sets": _LIST, "test_set": _STR,
    "train_scale": _LIST, "test_scale": _LIST, "epochs": _INT, "lr": _NUM, "batch_per_process": _INT,
    "world_size": _INT, "data_root": _STR}


class RecordError(ValueError):
    """A file is not a valid run record; the message starts with its path and says why."""


class Skipped(NamedTuple):
    path: Path
    reason: str


@dataclass
class Collected:
    """What :func:`collect_records` found: valid records (with their files) and the files it skipped, with why."""

    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def record_path(records_dir: str | Path, config_name: str, checkpoint_name: str, run_key_id: str) -> Path:
    """Where the record of one run lives: ``<records_dir>/<config>/<checkpoint>/<run key id>.json``.

    Each run key (seed included) has its own file, so no run replaces another's record.
    """
    return Path(records_dir) / config_name / checkpoint_name / f"{run_key_id}.json"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # JSON true/false are not numbers


def _typed(obj: dict[str, Any], spec: dict[str, tuple[type, ...]], where: str) -> list[str]:
    problems = []
    for key, types in spec.items():
        if key not in obj:
            problems.append(f"{where}{key} missing")
        elif isinstance(obj[key], bool) or not isinstance(obj[key], types):
            problems.append(f"{where}{key} is {type(obj[key]).__name__}, not {'/'.join(t.__name__ for t in types)}")
    return problems


def _check_metrics(metrics: dict[str, Any], complete: bool) -> list[str]:
    if complete and not metrics:
        return ["a complete record has no metrics"]
    bad = [f"metric {k!r} is {v!r}, not a number" for k, v in metrics.items() if not _is_number(v)]
    if complete:
        bad += [f"metric {k!r} is {v!r}, not finite" for k, v in metrics.items() if _is_number(v)
                and not math.isfinite(v)]
    return bad


def _check_parts(rec: dict[str, Any]) -> list[str]:
    ckpt, config = rec["checkpoint"], rec["config"]
    problems = _typed(ckpt, {"name": _STR}, "checkpoint.")
    if ckpt.get("sha256") is not None and not isinstance(ckpt["sha256"], str):
        problems.append("checkpoint.sha256 is neither a string nor null")
    problems += _typed(config, {"name": _STR, "settings": _DICT}, "config.")
    if isinstance(config.get("settings"), dict):
        settings = config["settings"]
        problems += _typed(settings, SETTINGS, "config.settings.")
        for scale in ("train_scale", "test_scale"):
            value = settings.get(scale)
            if isinstance(value, list) and (len(value) != 2 or not all(map(_is_number, value))):
                problems.append(f"config.settings.{scale} is {value!r}, not [width, height]")
    return problems


def check_record(rec: Any) -> list[str]:
    """The problems that make ``rec`` not a valid run record of this schema (empty when it is one)."""
    if not isinstance(rec, dict):
        return [f"a JSON {type(rec).__name__}, not an object"]
    if rec.get("schema") != SCHEMA:
        return [f"foreign schema {rec.get('schema')!r} (a mixbench transfer run record says {SCHEMA!r})"]
    problems = _typed(rec, REQUIRED, "")
    if problems:
        return problems
    if rec["status"] not in STATUSES:
        problems.append(f"status {rec['status']!r} is not one of {list(STATUSES)}")
    if rec["status"] == "invalid" and not isinstance(rec.get("invalid_reason"), str):
        problems.append("an invalid record has no invalid_reason")
    problems += _check_metrics(rec["metrics"], rec["status"] == "complete")
    problems += _check_parts(rec)
    if rec["run_key_id"] != key_id(rec["run_key"]):
        problems.append(f"run_key_id {rec['run_key_id']!r} is not the id of its run_key ({key_id(rec['run_key'])})")
    if "seed" in rec["run_key"] and rec["run_key"]["seed"] != rec["seed"]:
        problems.append(f"seed {rec['seed']} differs from the run key's seed {rec['run_key']['seed']}")
    return problems


def _raise_if_invalid(path: Path, rec: Any) -> None:
    problems = check_record(rec)
    if problems:
        raise RecordError(f"{path}: not a valid run record: {'; '.join(problems)}")


def write_record(path: str | Path, record: dict[str, Any]) -> Path:
    """Check ``record`` against the schema and write it atomically (a reader never sees a partial file)."""
    _raise_if_invalid(Path(path), record)
    return atomic_write_json(path, record)


def load_record(path: str | Path) -> dict[str, Any]:
    """Read one record; :class:`RecordError` names the file and why when it is not a valid run record."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: not a readable JSON file ({err})") from None
    _raise_if_invalid(path, rec)
    return rec


def collect_records(paths: list[str | Path], strict: bool = False) -> Collected:
    """Records from files and folders (searched recursively for ``*.json``), sorted by path.

    A file that is not a valid run record (unreadable, foreign schema, fails :func:`check_record`) is skipped and
    listed in ``skipped`` with why; with ``strict`` the first one raises :class:`RecordError`. A path that does not
    exist raises ``FileNotFoundError``.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(p.rglob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such record file or folder")
    out = Collected()
    for f in sorted(set(files)):
        try:
            rec = load_record(f)
        except RecordError as err:
            if strict:
                raise
            out.skipped.append(Skipped(f, str(err).removeprefix(f"{f}: ")))
            continue
        out.records.append(rec)
        out.files.append(f)
    return out


def is_complete(path: str | Path, run_key: dict[str, Any]) -> bool:
    """True when ``path`` holds a valid, finished record of the same run key (checkpoint sha256, config name and
    resolved-config digest, data root, seed, world size). Anything else means the run is (re)done."""
    try:
        rec = load_record(path)
    except (RecordError, FileNotFoundError):
        return False
    return rec["status"] == "complete" and rec["run_key"] == run_key


def metrics_status(metrics: dict[str, Any]) -> tuple[str, str | None]:
    """``('complete', None)`` for finite metrics; ``('invalid', why)`` when there are none, or one is NaN or inf
    (a diverged run). Tables show only complete records, so neither is ever printed as measured."""
    if not metrics:
        return "invalid", "the evaluator returned no metrics (no test image, or no detection above the threshold)"
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))
    if bad:
        return "invalid", f"non-finite metrics {bad}: the run diverged"
    return "complete", None
