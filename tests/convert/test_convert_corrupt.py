"""Damaged files are called corrupt (CRC-32 checked before any tensor is used); weights must be floating point and
come out float32."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
import torch
from convert_helpers import random_resnet

from mixbench.cli import main
from mixbench.convert.api import convert_checkpoint
from mixbench.convert.errors import ConversionError


@pytest.fixture(scope="module")
def r18_sd() -> dict[str, torch.Tensor]:
    return random_resnet("resnet18", seed=0).state_dict()


def _largest_record(path: Path) -> tuple[str, int]:
    """(name, offset of its data) of the biggest record, read from the zip's local header (APPNOTE 4.3.7)."""
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    return info.filename, info.header_offset + 30 + name_len + extra_len


def _damage(path: Path, byte: int, size: int = 4096) -> str:
    """Overwrite ``size`` bytes inside the largest tensor's data with ``byte``; returns the record's name."""
    name, offset = _largest_record(path)
    with open(path, "r+b") as f:
        f.seek(offset + 1000)
        f.write(bytes([byte]) * size)
    return name


@pytest.mark.parametrize("byte", [0x3F, 0xFF])  # 0x3f3f3f3f is a plain float (0.747); 0xffffffff is NaN
def test_damaged_file_is_called_corrupt(tmp_path: Path, r18_sd, byte: int, capsys) -> None:
    src, out = tmp_path / "r18.pth", tmp_path / "out.pth"
    torch.save(r18_sd, src)
    record = _damage(src, byte)
    assert main(["convert", str(src), "-o", str(out), "--to", "mmdet"]) == 2
    err = capsys.readouterr().err
    assert f"{src}: corrupt file: record {record!r} does not match its stored CRC-32" in err
    assert "diverged" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_legacy_file_converts_with_a_note_that_it_cannot_be_verified(tmp_path: Path, r18_sd) -> None:
    src = tmp_path / "legacy.pth"
    torch.save(r18_sd, src, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(src)
    rep = convert_checkpoint(src, tmp_path / "out.pth", to="mmdet")
    assert any("damage to it cannot be detected" in n for n in rep.notes)
    saved = torch.load(tmp_path / "out.pth", weights_only=True)
    assert any("cannot be detected" in n for n in saved["meta"]["mixbench_convert"]["notes"])


def test_legacy_file_with_nan_may_be_damaged_or_diverged(tmp_path: Path, r18_sd) -> None:
    sd = dict(r18_sd)
    sd["layer1.0.conv1.weight"] = torch.full_like(sd["layer1.0.conv1.weight"], float("nan"))
    torch.save(sd, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(ConversionError, match="diverged, or the file is damaged"):
        convert_checkpoint(tmp_path / "legacy.pth", tmp_path / "out.pth", to="mmdet")


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64, torch.bool])
def test_non_float_weight_is_refused_naming_the_key(tmp_path: Path, r18_sd, dtype, capsys) -> None:
    sd = dict(r18_sd)
    sd["conv1.weight"] = sd["conv1.weight"].to(dtype)
    torch.save(sd, tmp_path / "bad.pth")
    out = tmp_path / "out.pth"
    assert main(["convert", str(tmp_path / "bad.pth"), "-o", str(out), "--to", "torchvision"]) == 2
    assert f"bad.pth: conv1.weight is {dtype}; ResNet weights are floating point" in capsys.readouterr().err
    assert not out.exists()


def test_float_batch_counter_is_refused(tmp_path: Path, r18_sd) -> None:
    sd = {**r18_sd, "bn1.num_batches_tracked": torch.tensor(3.0)}
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ConversionError, match="bn1.num_batches_tracked is torch.float32; a BatchNorm counter"):
        convert_checkpoint(tmp_path / "bad.pth", tmp_path / "out.pth", to="mmdet")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_weights_come_out_float32_with_a_note(tmp_path: Path, r18_sd, dtype, capsys) -> None:
    sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in r18_sd.items()}
    torch.save(sd, tmp_path / "half.pth")
    assert main(["convert", str(tmp_path / "half.pth"), "-o", str(tmp_path / "o.pth"), "--to", "mmdet"]) == 0
    n_float = sum(v.is_floating_point() for k, v in sd.items() if not k.startswith("fc."))
    name = str(dtype).removeprefix("torch.")
    assert f"note: {n_float} tensors stored as {name} were converted to float32" in capsys.readouterr().out
    saved = torch.load(tmp_path / "o.pth", weights_only=True)["state_dict"]
    for key, value in saved.items():
        if key.endswith("num_batches_tracked"):
            assert value.dtype == torch.int64 and torch.equal(value, r18_sd[key])
        else:  # reference: torch's own cast of what the file held
            assert value.dtype == torch.float32 and torch.equal(value, sd[key].float())
