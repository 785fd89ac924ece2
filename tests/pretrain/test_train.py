"""Real (tiny) pretraining runs on the synthetic data through mmengine's Runner: checkpoint metadata,
resume after SIGKILL, and 2 CPU processes under torchrun (gloo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mixbench.base.safe_load import safe_torch_load

REPO = Path(__file__).resolve().parents[2]
MOCO_MIX = REPO / "configs/pretrain/moco-mix_r18_synthetic.py"


# The CI machine has 2 cores shared with other jobs: one thread per process avoids OpenMP's spin-waits, which
# made these runs 3-5x slower under load (measured).
ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def _tiny_options(root: Path, epochs: int, batch: int = 8) -> list[str]:
    return [
        f"train_dataloader.dataset.root={root}/train",
        f"train_cfg.max_epochs={epochs}",
        f"train_dataloader.batch_size={batch}",
        "train_dataloader.num_workers=0",
        "train_dataloader.persistent_workers=False",
        "train_dataloader.dataset.size=32",
        "model.K=64",
    ]


def _as_dict(options: list[str]) -> dict:
    from mixbench.base.config import parse_cfg_options

    return parse_cfg_options(options)


@pytest.mark.slow
def test_moco_mix_run_saves_contract_checkpoint(synthetic_root, tmp_path):
    from mixbench.pretrain.train import train

    with pytest.warns(UserWarning, match="--amp ignored: no GPU"):
        work_dir = train(MOCO_MIX, tmp_path / "wd", _as_dict(_tiny_options(synthetic_root["imagenet"], 1)),
                         amp=True, channels_last=True)
    assert (work_dir / "last_checkpoint").read_text().strip().endswith("epoch_1.pth")
    ckpt = safe_torch_load(work_dir / "epoch_1.pth")
    run = ckpt["meta"]["mixbench_run"]  # CPU: --amp stays fp32 and says so; channels_last applied
    assert run["precision"] == "fp32" and run["amp_requested"] and "no GPU" in run["note"]
    assert run["channels_last"] and run["device"] == "cpu" and not run["cudnn_benchmark"]
    assert ckpt["state_dict"]["encoder_q.conv1.weight"].is_contiguous(memory_format=torch.channels_last)
    meta = ckpt["meta"]["mixbench"]
    assert meta["method"] == "moco" and meta["arch"] == "resnet18" and meta["width"] == 1.0
    assert meta["feature_dim"] == 512 and meta["color"] is None
    assert meta["pixel_mean"] == [123.675, 116.28, 103.53] and meta["pixel_std"] == [58.395, 57.12, 57.375]
    assert meta["mixture"]["global"] == {"n": 4, "p": 0.5, "semantics": "paper_eq"}
    assert meta["mixture"]["region"] == {"n": 5, "p": 0.5, "lambda_decay": 0.2, "semantics": "paper_eq"}
    assert meta["config_name"] == "moco-mix_r18_synthetic"
    assert "cfg" in ckpt["meta"]
    sd = ckpt["state_dict"]
    assert "encoder_q.layer4.1.conv2.weight" in sd and "encoder_k.fc.2.weight" in sd and "queue" in sd
    assert sd["queue_ptr"].item() == 32 % 64  # one epoch of 32 images went through the queue
    log = next(work_dir.glob("*/*.log")).read_text()  # the preset's KNNMonitorHook ran before and after
    assert "kNN before training" in log and "kNN epoch 1" in log


@pytest.mark.slow
def test_cmc_run_fills_bank_size(synthetic_root, tmp_path):
    from mixbench.pretrain.train import train

    opts = _tiny_options(synthetic_root["imagenet"], 1)[:-1] + ["model.K=16", "model.arch=resnet18"]
    work_dir = train(REPO / "configs/pretrain/cmc-mix_r50half_synthetic.py", tmp_path / "wd", _as_dict(opts))
    ckpt = safe_torch_load(work_dir / "epoch_1.pth")
    assert ckpt["meta"]["mixbench"]["method"] == "cmc" and ckpt["meta"]["mixbench"]["width"] == 0.5
    assert ckpt["state_dict"]["memory_l"].shape == (32, 128)  # tiny preset: 4 classes x 8 images
    assert ckpt["state_dict"]["encoder_ab.conv1.weight"].shape[1] == 2


def _cmd(work_dir: Path, options: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "mixbench.cli", "pretrain", str(MOCO_MIX), "--work-dir", str(work_dir), *extra,
            "--cfg-options", *options]  # fmt: skip


@pytest.mark.slow
def test_resume_after_sigkill_finishes_at_the_right_epoch(synthetic_root, tmp_path):
    work_dir = tmp_path / "wd"
    # batch 4 -> 8 iterations per epoch; the kill lands in epoch 2 of 2
    options = _tiny_options(synthetic_root["imagenet"], 2, batch=4)
    env = ENV
    proc = subprocess.Popen(_cmd(work_dir, options), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not (work_dir / "epoch_1.pth").exists() or not (work_dir / "last_checkpoint").exists():
        assert proc.poll() is None, "training exited before its first checkpoint"
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (work_dir / "epoch_2.pth").exists(), "the run finished before it could be killed"
    done = subprocess.run(_cmd(work_dir, options, "--resume"), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "Auto resumed from the latest checkpoint" in log
    assert "Epoch(train) [1]" not in log  # continued, did not restart
    assert "Epoch(train) [2]" in log
    final = safe_torch_load(work_dir / "epoch_2.pth")
    assert final["meta"]["epoch"] == 2 and final["meta"]["iter"] == 2 * 8
    assert final["meta"]["mixbench"]["config_name"] == "moco-mix_r18_synthetic"


@pytest.mark.slow
def test_two_cpu_processes_torchrun_gloo(synthetic_root, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = _tiny_options(synthetic_root["imagenet"], 1, batch=4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "mixbench.cli", "pretrain", str(MOCO_MIX), "--launcher", "pytorch", "--work-dir", str(tmp_path / "wd"),
           "--cfg-options", *options]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ckpt = safe_torch_load(tmp_path / "wd" / "epoch_1.pth")
    assert ckpt["meta"]["iter"] == 4  # 32 images / (2 processes x 4)
    assert ckpt["state_dict"]["queue_ptr"].item() == 32  # both processes' keys entered the one queue


@pytest.mark.slow
def test_device_views_config_trains(synthetic_root, tmp_path):
    """The device view preset trains through the Runner: decoded images, views on the device."""
    from mixbench.pretrain.train import train

    config = REPO / "configs/pretrain/moco-mix_r18_synthetic_device-views.py"
    options = _tiny_options(synthetic_root["imagenet"], 1) + ["model.data_preprocessor.device_views.size=32"]
    work_dir = train(config, tmp_path / "wd", _as_dict(options))
    ckpt = safe_torch_load(work_dir / "epoch_1.pth")
    assert ckpt["meta"]["mixbench"]["config_name"] == "moco-mix_r18_synthetic_device-views"
    assert ckpt["state_dict"]["queue_ptr"].item() == 32 % 64  # the epoch's 32 images went through the queue
    log = next(work_dir.glob("*/*.log")).read_text()
    assert "kNN epoch 1" in log


def test_channels_last_builds_the_model_in_nhwc_before_the_runner_wraps_it(tmp_path):
    from mmengine.registry import MODELS

    import mixbench.pretrain.registry  # noqa: F401
    from mixbench.pretrain.train import build_config

    cfg = build_config(MOCO_MIX, tmp_path, channels_last=True)
    assert cfg.model.type == "ChannelsLastModel" and cfg.mixbench_run["channels_last"]
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == "MoCo"  # the model itself: same state_dict keys, same converters
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    plain = build_config(MOCO_MIX, tmp_path)
    assert plain.model.type == "MoCo" and plain.mixbench_run["precision"] == "fp32"


@pytest.mark.slow
def test_diverging_run_stops_naming_the_iteration_and_saves_nothing(synthetic_root, tmp_path):
    """lr 1e6 must stop the run, not exit 0 with NaN weights in its checkpoints and acc_top1 100."""
    from mixbench.base.hooks import NonFiniteLossError
    from mixbench.pretrain.train import train

    opts = _tiny_options(synthetic_root["imagenet"], 1) + ["optim_wrapper.optimizer.lr=1e6"]
    # 4 iterations: the last step's loss is still finite, its weights are not: caught before the epoch is saved
    diverged = r"training diverged: (loss=(nan|inf) at iteration \d|\d+ weights hold NaN or inf .* epoch 1 \(iter)"
    with pytest.raises(NonFiniteLossError, match=diverged):
        train(MOCO_MIX, tmp_path / "wd", _as_dict(opts))
    assert not list((tmp_path / "wd").glob("*.pth"))
