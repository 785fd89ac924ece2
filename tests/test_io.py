"""mixbench.base.io: atomic writes land with the mode a plain open() gives (issue 12: they were always 0600)."""

from __future__ import annotations

import os

import pytest

from mixbench.base.io import atomic_write_text


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
