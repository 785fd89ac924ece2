"""Safe loading: mmengine resumes its own checkpoints under weights_only=True; pickled code is refused unrun."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mixbench.base.safe_load import UnsafeCheckpointError, allow_mmengine_checkpoints, safe_torch_load


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
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises((ValueError, UnsafeCheckpointError), match="junk.pth"):
        safe_torch_load(tmp_path / "junk.pth")


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
