"""Safety: pickled code is refused and never runs; .pkl sources refused; outputs carry the source sha256."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch
from convert_helpers import random_resnet

from mixbench.base.safe_load import UnsafeCheckpointError
from mixbench.convert.api import convert_checkpoint
from mixbench.convert.errors import ConversionError
from mixbench.convert.sources import sidecar_meta_path


class _Payload:
    """For a plain-pickle (.pkl) file; torch.save files use the shared ``evil_checkpoint`` fixture."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture(scope="module")
def r18_sd() -> dict[str, torch.Tensor]:
    return random_resnet("resnet18", seed=0).state_dict()


def test_malicious_checkpoint_refused_by_every_entry_point(tmp_path: Path, evil_checkpoint, capsys) -> None:
    """convert, the convert command, feature extraction (kNN/linear/flatness) and transfer all refuse it unrun."""
    src, marker = evil_checkpoint
    with pytest.raises(UnsafeCheckpointError, match="evil.pth.*refused.*nothing from the file was run"):
        convert_checkpoint(src, tmp_path / "out.pth", to="mmdet")
    assert not marker.exists() and not (tmp_path / "out.pth").exists()

    import argparse

    from mixbench.commands import convert as cli  # the command line says it too, with a non-zero exit

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["convert", str(src), "-o", str(tmp_path / "o.pth"), "--to", "torchvision"])
    assert args.func(args) == 2
    assert "weights_only" in capsys.readouterr().err
    assert not marker.exists()

    from mixbench.evaluate import load_feature_extractor
    from mixbench.transfer.checkpoint import Checkpoint, TransferError, prepare_checkpoint

    with pytest.raises(UnsafeCheckpointError, match="evil.pth.*nothing from the file was run"):
        load_feature_extractor(src)
    with pytest.raises(TransferError, match="evil.pth.*nothing from the file was run"):
        prepare_checkpoint(Checkpoint(name="evil", path=src), tmp_path / "cache")
    assert not marker.exists() and not list((tmp_path / "cache").glob("*.pth"))


def test_malicious_raw_pickle_refused(tmp_path: Path, r18_sd) -> None:
    """A detectron2-style .pkl written with plain pickle, carrying a payload."""
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pkl"
    with open(src, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in r18_sd.items()}, "__author__": _Payload(marker)}, f)
    with pytest.raises((UnsafeCheckpointError, ConversionError), match="evil.pkl"):
        convert_checkpoint(src, tmp_path / "out.pth", to="mmdet")
    assert not marker.exists()


def test_our_detectron2_output_is_not_read_back(tmp_path: Path, r18_sd) -> None:
    torch.save(r18_sd, tmp_path / "r18.pth")
    convert_checkpoint(tmp_path / "r18.pth", tmp_path / "r18.pkl", to="detectron2")
    with pytest.raises(ConversionError, match="would need pickle.load, which runs any code"):
        convert_checkpoint(tmp_path / "r18.pkl", tmp_path / "again.pth", to="mmdet")


def test_outputs_carry_source_sha256(tmp_path: Path, r18_sd) -> None:
    src = tmp_path / "r18.pth"
    torch.save(r18_sd, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    convert_checkpoint(src, tmp_path / "m.pth", to="mmdet")
    assert (
        torch.load(tmp_path / "m.pth", weights_only=True)["meta"]["mixbench_convert"]["source_sha256"]
        == digest
    )
    convert_checkpoint(src, tmp_path / "t.pth", to="torchvision")
    import json

    assert (
        json.loads(sidecar_meta_path(tmp_path / "t.pth").read_text())["mixbench_convert"]["source_sha256"]
        == digest
    )
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes left no temporaries
