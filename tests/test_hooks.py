"""mixbench.base.hooks with a real (toy) mmengine Runner: a non-finite loss stops training naming the iteration,
and a checkpoint save interrupted by a kill or a full disk leaves the previous checkpoint to resume from, no
partial file, and a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mixbench.base.hooks import FiniteLossHook, NonFiniteLossError, add_divergence_and_save_guards
from mixbench.base.io import os_error_message
from mixbench.base.safe_load import allow_mmengine_checkpoints, safe_torch_load


class Toy(BaseModel):
    """y = w x; the loss turns NaN at iteration ``nan_at`` (1-based) when set."""

    def __init__(self, nan_at: int | None = None) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.nan_at, self.calls = nan_at, 0

    def forward(self, x, mode="loss"):
        self.calls += 1
        loss = ((self.w * x) ** 2).mean()
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss}


def _runner(tmp_path, model, *, epochs=2, guarded=False, max_keep=1, resume=False) -> Runner:
    """A Runner as mmengine's defaults build it (``guarded=False``) or as every mixbench stage does."""
    cfg = Config(dict(
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=max_keep)),
        custom_hooks=[],
    ))
    if guarded:
        add_divergence_and_save_guards(cfg)
    data = [dict(x=torch.ones(1) * i) for i in range(4)]
    allow_mmengine_checkpoints()
    return Runner(model=model, work_dir=str(tmp_path), train_dataloader=dict(
        dataset=data, sampler=dict(type="DefaultSampler", shuffle=False), batch_size=2,
        collate_fn=dict(type="default_collate")),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)), train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=cfg.default_hooks, custom_hooks=cfg.custom_hooks, resume=resume,
        experiment_name=f"toy{len(list(tmp_path.iterdir()))}", default_scope="mmengine")


def test_guard_config_swaps_the_checkpoint_hook_and_adds_the_loss_check():
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
                      custom_hooks=[dict(type="MixbenchMetaHook")]))
    add_divergence_and_save_guards(add_divergence_and_save_guards(cfg))  # twice: idempotent
    assert cfg.default_hooks.checkpoint.type == "mmengine.SafeCheckpointHook"
    assert [h["type"] for h in cfg.custom_hooks] == ["MixbenchMetaHook", "mmengine.FiniteLossHook"]


def test_nan_loss_stops_at_its_iteration_before_any_checkpoint(tmp_path):
    runner = _runner(tmp_path, Toy(nan_at=3), guarded=True)
    with pytest.raises(NonFiniteLossError, match=r"loss=nan at iteration 3 \(epoch 2, batch 1\)"):
        runner.train()
    assert (tmp_path / "epoch_1.pth").is_file() and not (tmp_path / "epoch_2.pth").exists()


def test_finite_loss_hook_accepts_finite_and_flags_inf():
    class R:  # the three runner attributes the hook reads
        work_dir, iter, epoch = "wd", 6, 1

    hook = FiniteLossHook()
    hook.after_train_iter(R(), 0, outputs={"loss": torch.tensor(1.5), "acc_top1": torch.tensor(float("nan"))})
    with pytest.raises(NonFiniteLossError, match=r"loss_cls=inf at iteration 7"):
        hook.after_train_iter(R(), 0, outputs={"loss": torch.tensor(1.0), "loss_cls": torch.tensor(float("inf"))})


def _fail_second_save(monkeypatch, which: int = 2):
    """Make the 2nd checkpoint write die half-way (a kill or a full disk), after writing part of the file."""
    import mmengine.runner.runner as rr

    real, calls = rr.save_checkpoint, []

    def dying(checkpoint, filename, *a, **k):
        calls.append(filename)
        if len(calls) == which:
            with open(filename, "wb") as f:
                f.write(b"PK\x03\x04 partial")
            raise OSError(28, "No space left on device")
        return real(checkpoint, filename, *a, **k)

    monkeypatch.setattr(rr, "save_checkpoint", dying)


def test_mmengine_checkpoint_hook_loses_the_last_good_checkpoint(tmp_path, monkeypatch):
    """mmengine's own hook: nothing complete is left (kept so a fix upstream is noticed)."""
    _fail_second_save(monkeypatch)
    with pytest.raises(OSError):
        _runner(tmp_path, Toy()).train()
    assert not (tmp_path / "epoch_1.pth").exists()  # deleted before epoch 2 was written
    assert (tmp_path / "epoch_2.pth").read_bytes() == b"PK\x03\x04 partial"  # what is left is no checkpoint


def test_interrupted_save_keeps_the_last_good_checkpoint_and_resumes(tmp_path, monkeypatch):
    _fail_second_save(monkeypatch)
    with pytest.raises(OSError) as err:
        _runner(tmp_path, Toy(), guarded=True).train()
    assert os_error_message(err.value) == (
        f"{tmp_path / 'epoch_2.pth'}: No space left on device (the disk is full); the partial file was removed, "
        "the last complete checkpoint is kept for --resume")
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["epoch_1.pth"]  # no partial epoch_2.pth
    assert not list(tmp_path.glob(".*partial"))  # it would hold the space the resumed run needs
    assert (tmp_path / "last_checkpoint").read_text().endswith("epoch_1.pth")
    assert safe_torch_load(tmp_path / "epoch_1.pth")["meta"]["epoch"] == 1
    monkeypatch.undo()
    runner = _runner(tmp_path, Toy(), guarded=True, resume=True)
    runner.train()  # resumes from epoch 1, finishes epoch 2, then drops epoch 1 (max_keep_ckpts=1)
    assert runner.epoch == 2
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["epoch_2.pth"]
    assert safe_torch_load(tmp_path / "epoch_2.pth")["meta"]["epoch"] == 2
    assert (tmp_path / "last_checkpoint").read_text().endswith("epoch_2.pth")


@pytest.mark.slow
def test_full_disk_under_a_pretraining_work_dir_is_one_line_without_partial(synthetic_root, tmp_path, monkeypatch,
                                                                          capsys):
    from mixbench.cli import main

    config = Path(__file__).resolve().parents[1] / "configs/pretrain/moco-mix_r18_synthetic.py"
    options = [f"train_dataloader.dataset.root={synthetic_root['imagenet']}/train", "train_cfg.max_epochs=1",
               "train_dataloader.batch_size=8", "train_dataloader.num_workers=0",
               "train_dataloader.persistent_workers=False", "train_dataloader.dataset.size=32", "model.K=64"]
    _fail_second_save(monkeypatch, which=1)
    work_dir = tmp_path / "wd"
    assert main(["pretrain", str(config), "--work-dir", str(work_dir), "--cfg-options", *options]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == (
        f"mixbench pretrain: error: {work_dir / 'epoch_1.pth'}: No space left on device (the disk is full); the "
        "partial file was removed, the last complete checkpoint is kept for --resume")
    assert "Traceback" not in err
    assert not list(work_dir.glob(".*partial")) and not list(work_dir.glob("*.pth"))
