"""Safe loading: mmengine resumes its own checkpoints under weights_only=True; pickled code is refused unrun."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mixbench.base.safe_load import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    allow_mmengine_checkpoints,
    safe_torch_load,
    verify_checkpoint_file,
)


def test_malicious_pickle_is_refused_and_never_runs(evil_checkpoint) -> None:
    path, marker = evil_checkpoint
    with pytest.raises(UnsafeCheckpointError) as err:
        safe_torch_load(path)
    assert str(path) in str(err.value) and "posix.mkdir" in str(err.value)
    assert not marker.exists()


def test_plain_state_dict_loads(tmp_path: Path) -> None:
    sd = nn.Linear(3, 2).state_dict()
    torch.save({"state_dict": sd, "meta": {"a": [1, 2.5, "x"]}}, tmp_path / "ok.pth")
    loaded = safe_torch_load(tmp_path / "ok.pth")
    assert loaded["meta"] == {"a": [1, 2.5, "x"]}
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in sd.items())


def test_bad_files_have_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        safe_torch_load(tmp_path / "missing.pth")
    with pytest.raises(IsADirectoryError, match=f"{tmp_path}: is a directory, not a checkpoint file"):
        safe_torch_load(tmp_path)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match=r"empty.pth: corrupt file: it is empty \(0 bytes\)"):
        safe_torch_load(tmp_path / "empty.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises((ValueError, UnsafeCheckpointError), match="junk.pth"):
        safe_torch_load(tmp_path / "junk.pth")


def test_crc_mismatch_is_found_before_loading(tmp_path: Path) -> None:
    """One flipped byte inside a tensor record: torch itself would load the wrong value silently."""
    path = tmp_path / "w.pth"
    torch.save({"w": torch.arange(10_000, dtype=torch.float32)}, path)
    with zipfile.ZipFile(path) as zf:  # where the tensor's bytes are: search for them (independent of the layout)
        name = next(n for n in zf.namelist() if n.endswith("data/0"))
    raw = bytearray(path.read_bytes())
    at = raw.find(torch.arange(10_000, dtype=torch.float32).numpy().tobytes())
    raw[at + 4000] ^= 0xFF
    path.write_bytes(bytes(raw))
    torch.save({"a": torch.ones(3)}, tmp_path / "ok.pth")
    assert verify_checkpoint_file(tmp_path / "ok.pth") is True
    with pytest.raises(CorruptCheckpointError, match=f"w.pth: corrupt file: record {name!r} does not match"):
        safe_torch_load(path)
    legacy = tmp_path / "legacy.pth"
    torch.save({"a": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    assert verify_checkpoint_file(legacy) is False and torch.equal(safe_torch_load(legacy)["a"], torch.ones(3))


class _Regressor(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor, mode: str = "loss"):
        return {"loss": (self.lin(x).squeeze(1) - y).pow(2).mean()}


class _Data(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict:
        x = torch.tensor([i / 16.0, 1.0 - i / 16.0])
        return {"x": x, "y": 3 * x[0] - x[1]}


def _runner(work_dir: Path, max_epochs: int, resume: bool) -> Runner:
    return Runner(
        model=_Regressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=_Data(), batch_size=4, sampler=dict(type="DefaultSampler", shuffle=True),
                              collate_fn=dict(type="default_collate")),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        param_scheduler=dict(type="MultiStepLR", milestones=[2], by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1),
                           logger=dict(type="LoggerHook", interval=1)),
        randomness=dict(seed=0),
        resume=resume,
    )


def test_mmengine_resume_under_weights_only(tmp_path: Path) -> None:
    allow_mmengine_checkpoints()
    first = _runner(tmp_path, max_epochs=2, resume=False)
    first.train()
    weights_after_2 = {k: v.clone() for k, v in first.model.state_dict().items()}
    # torch >= 2.6 defaults to weights_only=True, so this resume goes through the weights-only unpickler.
    second = _runner(tmp_path, max_epochs=3, resume=True)
    second.train()
    assert second.epoch == 3 and second.iter == 12
    ckpt = safe_torch_load(tmp_path / "epoch_3.pth")
    assert ckpt["meta"]["epoch"] == 3
    # the resumed run started from epoch 2's weights, not from scratch: its message hub kept the history
    hub = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert len(hub._log_history) == 12
    assert not all(torch.equal(weights_after_2[k], v) for k, v in second.model.state_dict().items())
