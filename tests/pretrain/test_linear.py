"""Linear evaluation end to end on the tiny synthetic tree: mmengine Runner, frozen backbone, real top-1."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch.utils.data import DataLoader

from mixbench.base.safe_load import safe_torch_load
from mixbench.commands import evaluate as eval_cli
from mixbench.evaluate import load_feature_extractor

CONFIG = "configs/linear/linear_1xb16-2e_synthetic.py"


@pytest.mark.slow
def test_linear_eval_end_to_end(synthetic_root, tmp_path, capsys):
    from mixbench.pretrain.data import ImageFolderViews, eval_collate
    from mixbench.pretrain.linear import LinearClassifier

    data = synthetic_root["imagenet"]
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args([
        "linear", CONFIG, "--checkpoint", "random:resnet18", "--work-dir", str(tmp_path),
        "--cfg-options", f"train_dataloader.dataset.root={data}/train",
        f"val_dataloader.dataset.root={data}/val",
    ])  # fmt: skip
    assert args.func(args) == 0
    assert "top-1" in capsys.readouterr().out
    result = json.loads((tmp_path / "linear_result.json").read_text())
    top1 = result["metrics"]["accuracy/top1"]
    assert 0.0 <= top1 <= 1.0 and result["num_classes"] == 4 and result["feature_dim"] == 512
    assert result["run"]["precision"] == "fp32" and result["run"]["device"] == "cpu"
    # where the number was made: the same provenance fields as a transfer record
    assert result["packages"]["mmengine"] == "0.10.7" and result["hardware"]["cpu_count"] >= 1
    assert "git_commit" in result

    ckpt = safe_torch_load(tmp_path / "epoch_2.pth")
    state = ckpt["state_dict"]
    # Frozen: every backbone tensor (weights and BN running statistics) equals the untouched initialisation.
    fresh = load_feature_extractor("random:resnet18").state_dict()
    for key, value in fresh.items():
        assert torch.equal(state[f"backbone.{key}"], value), key
    # SGD stepped the head (weight, bias) and nothing else: only they have momentum buffers.
    assert len(ckpt["optimizer"]["state"]) == 2

    # Independent re-evaluation of the saved model reproduces the reported top-1.
    model = LinearClassifier(load_feature_extractor("random:resnet18"), num_classes=4)
    model.load_state_dict(state)
    val = ImageFolderViews(
        f"{data}/val", aug=None, n_views=1, pipeline=[dict(type="Resize", size=73), dict(type="CenterCrop", size=64)]
    )
    correct = total = 0
    for batch in DataLoader(val, batch_size=8, collate_fn=eval_collate):
        logits = model(batch["inputs"], mode="tensor")
        correct += int((logits.argmax(1) == batch["data_samples"]).sum())
        total += len(batch["data_samples"])
    assert total == len(val) == 16
    assert top1 == pytest.approx(correct / total)
