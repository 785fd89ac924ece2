"""Plain I/O failures of ``mixbench convert`` end in one line and exit 2, with nothing half-written left behind.

Full and read-only disks are simulated by making the write raise the errno the kernel gives (tests run as root,
where permissions cannot make a folder read-only)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from convert_helpers import random_resnet

import mixbench.base.io as mio
from mixbench.cli import main


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "r18.pth"
    torch.save(random_resnet("resnet18", seed=0).state_dict(), path)
    return path


def _convert(src: Path, out: str, capsys, to: str = "mmdet") -> str:
    assert main(["convert", str(src), "-o", out, "--to", to]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixbench convert: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err.strip()


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


def test_output_that_is_a_directory_is_refused(tmp_path: Path, src: Path, capsys) -> None:
    (tmp_path / "cv").mkdir()
    err = _convert(src, str(tmp_path / "cv"), capsys)
    assert f"{tmp_path / 'cv'}: is a directory; -o takes the output file's name" in err
    assert _left(tmp_path / "cv") == []


def test_output_ending_in_a_slash_is_refused_not_written_as_a_file(tmp_path: Path, src: Path, capsys) -> None:
    err = _convert(src, f"{tmp_path / 'cv' / 'newdir'}/", capsys)
    assert "newdir/: ends in '/', so it names a folder" in err and "r18_mmdet.pth" in err
    assert not (tmp_path / "cv").exists()


def test_source_that_is_a_directory_is_named_as_such(tmp_path: Path, capsys) -> None:
    err = _convert(tmp_path, str(tmp_path / "o.pth"), capsys)
    assert f"{tmp_path}: is a directory, not a checkpoint file" in err


def test_empty_source_is_a_corrupt_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    err = _convert(tmp_path / "empty.pth", str(tmp_path / "o.pth"), capsys)
    assert f"{tmp_path / 'empty.pth'}: corrupt file: it is empty (0 bytes)" in err
    assert not (tmp_path / "o.pth").exists()


def test_read_only_output_folder(tmp_path: Path, src: Path, capsys, monkeypatch) -> None:
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "ro" / ".o.pth.x.tmp"))

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(mio.tempfile, "mkstemp", read_only)
    err = _convert(src, str(tmp_path / "ro" / "o.pth"), capsys)
    assert err == f"mixbench convert: error: {tmp_path / 'ro' / 'o.pth'}: Read-only file system; nothing was written"


class _FullDisk:
    """A file that takes ``room`` bytes, then fails as a full disk does (ENOSPC), after a partial write."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        if n > self.room:
            self.f.write(bytes(memoryview(data).cast("B")[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def full_disk(monkeypatch, room: int = 100_000) -> None:
    """Every file opened for writing through ``os.fdopen`` (atomic writes) holds at most ``room`` bytes."""
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real(fd, mode, *args, **kwargs)
        return _FullDisk(f, room) if "w" in mode else f

    monkeypatch.setattr(mio.os, "fdopen", fdopen)


@pytest.mark.parametrize("to", ["mmdet", "torchvision"])
def test_full_disk_under_the_output(tmp_path: Path, src: Path, capsys, monkeypatch, to: str) -> None:
    (tmp_path / "out").mkdir()
    full_disk(monkeypatch)
    out = tmp_path / "out" / "o.pth"
    err = _convert(src, str(out), capsys, to=to)
    assert err == (f"mixbench convert: error: {out}: No space left on device (the disk is full); "
                   "nothing was written")
    assert _left(tmp_path / "out") == []  # no temporary, no partial output, no metadata without weights


def test_full_disk_at_the_torchvision_metadata_removes_the_weights(tmp_path: Path, src: Path, capsys,
                                                                    monkeypatch) -> None:
    """The weights fit, their metadata does not: weights alone would later read as a foreign file."""
    (tmp_path / "out").mkdir()
    real, calls = mio.atomic_write, []

    def second_write_fails(path, write):
        calls.append(path)
        if len(calls) == 2:
            raise mio.write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path)
        return real(path, write)

    monkeypatch.setattr(mio, "atomic_write", second_write_fails)
    err = _convert(src, str(tmp_path / "out" / "t.pth"), capsys, to="torchvision")
    assert "t.pth.meta.json: No space left on device" in err
    assert _left(tmp_path / "out") == []
