"""A work dir that cannot be used (read-only, under a file) is a one-line error naming it, exit 2 on the CLI."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mixbench.base.locks import LOCK_NAME, WorkDirError, work_dir_lock
from mixbench.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_a_work_dir_under_a_file_is_named(tmp_path):
    (tmp_path / "plain").write_text("")
    with pytest.raises(WorkDirError, match=r"plain/wd: cannot use this work dir: Not a directory$"):
        with work_dir_lock(tmp_path / "plain" / "wd"):
            pass


@pytest.fixture
def read_only_locks(monkeypatch):
    """Every lock file on a read-only file system. The tests run as root, whom chmod does not stop, so os.open
    fails here as the kernel makes it fail there."""
    real = os.open

    def open_(path, flags, *args, **kwargs):
        if os.fspath(path).endswith(LOCK_NAME) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)


def _pipeline_config(tmp_path: Path, work: Path) -> str:
    path = tmp_path / "pipe.py"
    path.write_text(f"pretrain=[]\nsuites=['voc']\nbn_modes=['frozen']\nsuite_scale='demo'\ndata_dir='d'\n"
                    f"work_dir={str(work)!r}\nresults_dir={str(tmp_path / 'results')!r}\n")
    return str(path)


@pytest.mark.parametrize("command", ["pipeline", "pretrain", "transfer"])
def test_a_read_only_work_dir_is_one_line_and_exit_2(tmp_path, read_only_locks, capsys, command):
    work = tmp_path / "work"
    argv = {
        "pipeline": ["pipeline", _pipeline_config(tmp_path, work)],
        "pretrain": ["pretrain", str(REPO / "configs/pretrain/moco_r18_synthetic.py"), "--work-dir", str(work)],
        "transfer": ["transfer", "random", "--config",
                     str(REPO / "configs/transfer/demo/faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py"),
                     "--work-root", str(work), "--records-dir", str(tmp_path / "records"),
                     "--data-root", str(tmp_path / "data")],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mixbench {command}: error: {work}") and err.count("\n") == 1
    assert err.rstrip().endswith("cannot use this work dir: Read-only file system")
