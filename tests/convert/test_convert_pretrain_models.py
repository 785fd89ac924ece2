"""End to end with the real pretraining modules (ResNet-18 to stay cheap): checkpoints shaped like an mmengine
Runner's, converted; CMC's fold checked against CMC's own preprocessing + ``extract_feat`` (a second,
independent implementation of the two-view feature)."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from convert_helpers import randomize_bn

import mixbench.pretrain.registry  # noqa: F401  (registers MixPreprocessor with mmengine)
from mixbench.convert.api import convert_checkpoint
from mixbench.pretrain.cmc import CMC
from mixbench.pretrain.moco import MoCo


def _runner_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    torch.save(
        {
            "meta": {"epoch": 1, "iter": 4, "cfg": "model = dict(...)", "mixbench": model.mixbench_meta().to_dict()},
            "state_dict": model.state_dict(),
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.03, "params": [0, 1]}]},
        },
        path,
    )
    return path


def test_real_moco_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    moco = MoCo(arch="resnet18", K=64, mlp=True)
    randomize_bn(moco.encoder_q, 1)
    src = _runner_checkpoint(moco, tmp_path / "epoch_1.pth")
    rep = convert_checkpoint(src, tmp_path / "m.pth", to="mmdet")
    assert rep.source_layout == "mixbench-moco" and rep.arch == "resnet18"
    saved = torch.load(tmp_path / "m.pth", weights_only=True)
    ref = {k: v for k, v in moco.encoder_q.state_dict().items() if not k.startswith("fc.")}
    assert sorted(saved["state_dict"]) == sorted(ref)
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in ref.items())
    assert saved["meta"]["mixbench_convert"]["mixbench"] == moco.mixbench_meta().to_dict()


def test_real_cmc_checkpoint_fold(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cmc = CMC(arch="resnet18", n_data=10).eval()
    randomize_bn(cmc.encoder_l, 1)
    randomize_bn(cmc.encoder_ab, 2)
    src = _runner_checkpoint(cmc, tmp_path / "epoch_1.pth")
    rep = convert_checkpoint(src, tmp_path / "folded.pth", to="torchvision")
    assert rep.source_layout == "mixbench-cmc" and rep.arch == "resnet18"
    assert rep.rule_counts["drop_memory"] == 4  # memory_l, memory_ab, Z_l, Z_ab

    folded = torchvision.models.resnet18(weights=None)
    folded.load_state_dict(torch.load(tmp_path / "folded.pth", weights_only=True), strict=False)
    folded.fc = torch.nn.Identity()
    folded.eval()
    mean = torch.tensor(rep.meta.pixel_mean).view(1, 3, 1, 1)
    std = torch.tensor(rep.meta.pixel_std).view(1, 3, 1, 1)
    rgb = torch.rand(2, 3, 45, 37, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        ref = cmc.extract_feat(cmc.data_preprocessor.normalize(rgb))
        got = folded((rgb - mean) / std)
    assert got.shape == ref.shape == (2, 512)
    torch.testing.assert_close(got, ref, atol=1e-4 * ref.abs().max().item(), rtol=1e-4)
