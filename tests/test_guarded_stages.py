"""Every training stage runs with the finite-loss check and the safe checkpoint hook, and the command lines turn
bad input (missing config, NaN checkpoint) into one clear error line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

REPO = Path(__file__).resolve().parents[1]


def _assert_guarded(cfg) -> None:
    assert cfg.default_hooks.checkpoint.type == "mmengine.SafeCheckpointHook"
    assert any(h["type"] == "mmengine.FiniteLossHook" for h in cfg.custom_hooks)


def test_pretraining_config_is_guarded(tmp_path):
    from mixbench.pretrain.train import build_config

    _assert_guarded(build_config(REPO / "configs/pretrain/moco_r18_synthetic.py", tmp_path))


def test_transfer_config_is_guarded(tmp_path):
    from mixbench.transfer.checkpoint import Checkpoint
    from mixbench.transfer.config import build_config

    cfg = build_config(REPO / "configs/transfer/demo/faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py",
                       Checkpoint("random", None), tmp_path)
    _assert_guarded(cfg)


def test_linear_eval_runner_is_guarded(tmp_path, monkeypatch):
    """The linear config keeps max_keep_ckpts=1: exactly the case where mmengine's hook can lose everything."""
    from mmengine.runner import Runner

    from mixbench.pretrain.features import random_extractor
    from mixbench.pretrain.linear import run_linear

    seen = []

    class Stop(Exception):
        pass

    def capture(cfg):
        seen.append(cfg)
        raise Stop

    monkeypatch.setattr(Runner, "from_cfg", capture)
    with pytest.raises(Stop):
        run_linear(REPO / "configs/linear/linear_1xb256-60e_in100.py", "random:resnet18", str(tmp_path),
                   cfg_options={"model.num_classes": 100}, extractor=random_extractor("resnet18"))
    _assert_guarded(seen[0])
    assert seen[0].default_hooks.checkpoint.max_keep_ckpts == 1


def test_pretrain_cli_missing_config_is_one_line(capsys):
    from mixbench.cli import main

    assert main(["pretrain", "configs/pretrain/nope.py"]) == 2
    err = capsys.readouterr().err
    assert "mixbench pretrain: error: configs/pretrain/nope.py: no such config" in err and "Traceback" not in err


def test_transfer_cli_names_nan_weights_instead_of_blaming_depth(tmp_path, capsys):
    """A NaN checkpoint is named as such, not blamed on 'depth, width' by the load check (NaN != NaN)."""
    from mixbench.cli import main

    sd = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    sd["layer1.0.conv1.weight"] = torch.full_like(sd["layer1.0.conv1.weight"], float("nan"))
    torch.save(sd, tmp_path / "nan.pth")
    assert main(["transfer", str(tmp_path / "nan.pth"), "--suite", "voc", "--bn", "frozen",
                 "--work-root", str(tmp_path / "wd"), "--records-dir", str(tmp_path / "rec")]) == 2
    err = capsys.readouterr().err
    assert "nan.pth: 1 tensors hold NaN or inf (e.g. layer1.0.conv1.weight)" in err and "depth" not in err
