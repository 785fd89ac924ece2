"""Convert never destroys its input and never passes on a diverged run's NaN/inf weights."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from convert_helpers import random_resnet

from mixbench.commands import convert as cli
from mixbench.convert.api import convert_checkpoint
from mixbench.convert.errors import ConversionError


def _args(src: Path, out: Path) -> argparse.Namespace:
    """The command line as the user types it, through the real parser."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    return parser.parse_args(["convert", str(src), "-o", str(out), "--to", "mmdet"])


def test_output_equal_to_source_is_refused_and_source_kept(tmp_path: Path, capsys) -> None:
    src = tmp_path / "ck.pth"
    torch.save(random_resnet("resnet18").state_dict(), src)
    before = src.read_bytes()
    assert cli.run_convert(_args(src, src)) == 2
    assert "output path is the source file" in capsys.readouterr().err
    # the same file through another spelling of its path
    with pytest.raises(ConversionError, match="output path is the source file"):
        convert_checkpoint(src, tmp_path / "." / "ck.pth", to="mmdet")
    assert src.read_bytes() == before


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path: Path, bad: float) -> None:
    sd = random_resnet("resnet18").state_dict()
    sd["layer2.0.conv1.weight"][0, 0, 0, 0] = bad
    src, out = tmp_path / "diverged.pth", tmp_path / "out.pth"
    torch.save(sd, src)
    with pytest.raises(ConversionError, match=r"diverged\.pth: 1 tensors hold NaN or inf \(e\.g\. layer2\.0\.conv1"):
        convert_checkpoint(src, out, to="mmdet")
    assert not out.exists()


def test_output_honours_the_umask(tmp_path: Path) -> None:
    import os

    src, out = tmp_path / "ck.pth", tmp_path / "out.pth"
    torch.save(random_resnet("resnet18").state_dict(), src)
    old = os.umask(0o027)
    try:
        convert_checkpoint(src, out, to="mmdet")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o640  # 0666 & ~0027, as open(out, 'w') would give
