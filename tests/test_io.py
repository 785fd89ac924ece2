"""mixbench.base.io: atomic writes land with the mode a plain open() gives; a failed write names the file, says
why, and leaves the previous content and no temporary."""

from __future__ import annotations

import errno
import json
import os

import pytest

import mixbench.base.io as mio
from mixbench.base.io import atomic_write_json, atomic_write_text, os_error_message


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_honours_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with open(tmp_path / "plain.txt", "w") as f:  # the reference: what the OS gives a plain write
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def _fail_writes(monkeypatch, code: int) -> None:
    """The write into the temporary file fails with ``code`` after part of the data reached it (as the kernel does)."""
    real = os.fdopen

    class Failing:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data[:3]))
            raise OSError(code, os.strerror(code))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(mio.os, "fdopen", lambda fd, mode="r", *a, **k: Failing(real(fd, mode, *a, **k)))


def test_full_disk_names_the_file_keeps_the_old_content_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "records" / "voc" / "run.json"
    atomic_write_json(target, {"metrics": {"AP50": 0.5}})
    _fail_writes(monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError) as err:
        atomic_write_json(target, {"metrics": {"AP50": 0.7}})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert os_error_message(err.value) == f"{target}: No space left on device (the disk is full); nothing was written"
    assert json.loads(target.read_text()) == {"metrics": {"AP50": 0.5}}
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.json"]


def test_read_only_folder_names_the_file_not_the_temporary(tmp_path, monkeypatch):
    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, ".a.txt.123.tmp"))

    monkeypatch.setattr(mio.tempfile, "mkstemp", read_only)
    with pytest.raises(OSError) as err:
        atomic_write_text(tmp_path / "a.txt", "x")
    assert os_error_message(err.value) == f"{tmp_path / 'a.txt'}: Read-only file system; nothing was written"


@pytest.mark.slow
def test_full_disk_under_the_records_dir_is_one_line_and_leaves_no_temporary(tmp_path, synthetic_root, monkeypatch,
                                                                            capsys):
    """A real (tiny) transfer run whose record cannot be written: the disk of ``--records-dir`` is full."""

    from mixbench.cli import main

    records = tmp_path / "rec"
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):  # only files under the records folder are on the full disk
        f = real(fd, mode, *args, **kwargs)
        if "w" not in mode or not os.readlink(f"/proc/self/fd/{fd}").startswith(str(records)):
            return f

        class Full:
            def write(self, data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def __getattr__(self, name):
                return getattr(f, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

        return Full()

    monkeypatch.setattr(mio.os, "fdopen", fdopen)
    from tiny_voc import DEMO_VOC, ONE_EPOCH, TINY_VOC

    tiny = [*TINY_VOC, *ONE_EPOCH]
    argv = ["transfer", "random", "--config", str(DEMO_VOC), "--data-root", str(synthetic_root["voc"].parent),
            "--records-dir", str(records), "--work-root", str(tmp_path / "wd"), "--cfg-options", *tiny]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"mixbench transfer: error: {records}/") and last.endswith(
        ".json: No space left on device (the disk is full); nothing was written")
    assert [p for p in records.rglob("*") if p.is_file()] == []  # no temporary, no partial record
