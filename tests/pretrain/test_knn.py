"""Weighted kNN (InstDisc/MoCo monitor) against a brute-force loop written from the paper's formula."""

from __future__ import annotations

import argparse
import inspect
import math
from pathlib import Path

import pytest
import torch

from mixbench.pretrain.knn import KNN_K, KNN_T, knn_classify, knn_monitor, knn_scores

REPO = Path(__file__).resolve().parents[2]


def brute_force_scores(train, labels, test, k, T, C):
    """For each test row: cosine to every train row, keep the k largest, add exp(s / T) to the
    neighbour's class."""
    out = []
    for t in test.tolist():
        sims = []
        for i, f in enumerate(train.tolist()):
            dot = sum(a * b for a, b in zip(t, f))
            norm = math.sqrt(sum(a * a for a in t)) * math.sqrt(sum(b * b for b in f))
            sims.append((dot / norm, i))
        sims.sort(key=lambda s: -s[0])
        row = [0.0] * C
        for s, i in sims[: min(k, len(sims))]:
            row[int(labels[i])] += math.exp(s / T)
        out.append(row)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize(("k", "T"), [(1, 0.1), (5, 0.1), (7, 0.5), (200, 0.07)])
def test_knn_scores_match_brute_force(k, T):
    g = torch.Generator().manual_seed(k)
    train = torch.randn(23, 6, generator=g)
    labels = torch.randint(0, 4, (23,), generator=g)
    test = torch.randn(9, 6, generator=g)
    ref = brute_force_scores(train, labels, test, k, T, C=4)
    got = knn_scores(train, labels, test, k=k, T=T, num_classes=4, chunk=4)  # several chunks
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(knn_classify(train, labels, test, k, T, 4), ref.argmax(1))


def test_knn_separable_clusters_and_scale_invariance():
    centres = torch.eye(3) * 5
    train, labels = centres.repeat_interleave(4, 0), torch.arange(3).repeat_interleave(4)
    test = centres * 0.3 + 0.01
    assert knn_classify(train, labels, test, k=5, T=0.1, num_classes=3).tolist() == [0, 1, 2]
    # cosine similarity: scaling the features changes nothing
    assert torch.equal(
        knn_scores(train * 7, labels, test, 5, 0.1, 3), knn_scores(train, labels, test, 5, 0.1, 3)
    )


def test_knn_rejects_bad_shapes():
    with pytest.raises(ValueError, match="features"):
        knn_scores(torch.zeros(4, 3), torch.zeros(4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="labels"):
        knn_scores(torch.zeros(4, 3), torch.zeros(3), torch.zeros(2, 3))


def test_knn_monitor_on_live_moco_model():
    import mixbench.pretrain.registry  # noqa: F401  (MoCo's default preprocessor)
    from mixbench.pretrain.moco import MoCo

    torch.manual_seed(0)
    model = MoCo(arch="resnet18", dim=16, K=32)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (12, 3, 32, 32), generator=g).to(torch.uint8)
    labels = torch.arange(3).repeat(4)
    train = [{"inputs": images[:8], "data_samples": labels[:8]}]
    val = [{"inputs": images[8:], "data_samples": labels[8:]}]
    model.train()
    got = knn_monitor(model, train, val, k=3, T=0.1, num_classes=3)
    assert model.training  # the monitor must not flip the model's mode

    # by hand: normalise with the model's own statistics, pooled encoder_q features in eval mode, vote
    enc = model.encoder_q.eval()
    mean, std = model.data_preprocessor.mean, model.data_preprocessor.std
    with torch.no_grad():
        x = (images.float() - mean) / std
        feats = enc.avgpool(
            enc.layer4(enc.layer3(enc.layer2(enc.layer1(enc.maxpool(enc.relu(enc.bn1(enc.conv1(x))))))))
        ).flatten(1)
    pred = brute_force_scores(feats[:8], labels[:8], feats[8:], 3, 0.1, 3).argmax(1)
    assert got["top1"] == pytest.approx(float((pred == labels[8:]).float().mean()))
    assert (got["n_train"], got["n_val"], got["k"]) == (8, 4, 3)


def test_k_and_T_have_one_home():
    """k = 200 (InstDisc) and T = 0.1 (MoCo's monitor), and every user that does not say otherwise gets them."""
    from mixbench.ablation import load_ablation_config
    from mixbench.pretrain import knn
    from mixbench.pretrain.hooks import KNNMonitorHook

    assert (KNN_K, KNN_T) == (200, 0.1)
    hook = KNNMonitorHook()
    assert (hook.k, hook.T) == (KNN_K, KNN_T)
    for fn in (knn.knn_scores, knn.knn_classify, knn.knn_top1, knn.knn_monitor):
        params = inspect.signature(fn).parameters
        assert (params["k"].default, params["T"].default) == (KNN_K, KNN_T), fn.__name__
    # the ablation config states its evaluation protocol: it must be these numbers
    evaluation = load_ablation_config(str(REPO / "configs/pipeline/ablation_synthetic.py"))["evaluation"]
    assert (evaluation["knn_k"], evaluation["knn_T"]) == (KNN_K, KNN_T)


@pytest.mark.parametrize(("argv", "expected"), [([], (KNN_K, KNN_T)), (["--k", "7", "--T", "0.5"], (7, 0.5))])
def test_knn_command_defaults_come_from_the_module(argv, expected, synthetic_root, monkeypatch, capsys):
    from mixbench.commands import evaluate as eval_cli
    from mixbench.pretrain import knn

    seen = {}

    def fake_top1(extractor, train, val, k, T, num_classes, device):
        seen.update(k=k, T=T)
        return {"top1": 0.5, "n_train": 1, "n_val": 1, "k": k}

    monkeypatch.setattr(knn, "knn_top1", fake_top1)
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(["knn", "--checkpoint", "random:resnet18", "--data", str(synthetic_root["imagenet"]),
                              "--img-size", "32", "--resize-size", "36", *argv])  # fmt: skip
    assert args.func(args) == 0
    assert (seen["k"], seen["T"]) == expected
    assert f"k={expected[0]}, T={expected[1]}," in capsys.readouterr().out
