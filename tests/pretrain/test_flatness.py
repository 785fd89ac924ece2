"""Flatness analysis (paper Fig. 5): the sorted, image-averaged softmax of the pooled output, by hand."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from mixbench.commands import evaluate as eval_cli
from mixbench.pretrain.flatness import sorted_distribution


def hand_curve(rows: list[list[float]], T: float) -> list[float]:
    """softmax(v / T) per image with math.exp, sorted descending, averaged over images."""
    curves = []
    for v in rows:
        e = [math.exp(x / T) for x in v]
        p = sorted((x / sum(e) for x in e), reverse=True)
        curves.append(p)
    return [sum(c[j] for c in curves) / len(curves) for j in range(len(rows[0]))]


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


@pytest.mark.parametrize("T", [1.0, 0.5])
def test_sorted_distribution_matches_hand_computation(T):
    feats = torch.tensor([[0.0, 2.0, 1.0, 0.5], [3.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    loader = [
        {"inputs": feats[:2]},
        {"inputs": feats[2:]},
    ]  # two batches: the mean is over images, not batches
    curve, n = sorted_distribution(Identity(), loader, T=T)
    want = hand_curve(feats.tolist(), T)
    assert n == 3
    torch.testing.assert_close(curve, torch.tensor(want, dtype=torch.float64))
    mean_max = (
        sum(max(math.exp(x / T) for x in v) / sum(math.exp(x / T) for x in v) for v in feats.tolist()) / 3
    )
    assert float(curve[0]) == pytest.approx(mean_max)  # the printed number = the mean maximum probability
    assert float(curve.sum()) == pytest.approx(1.0)


def test_flatness_command_plots_and_prints(synthetic_root, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    out = tmp_path / "fig5.png"
    args = parser.parse_args(
        [
            "flatness",
            "random:resnet18",
            "random:resnet34",
            "--data",
            str(synthetic_root["imagenet"]),
            "--out",
            str(out),
            "--img-size",
            "32",
            "--resize-size",
            "36",
            "--max-per-class",
            "2",
        ]
    )
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [line.split() for line in text.splitlines() if line.startswith("random:")]
    assert [r[0] for r in rows] == ["random:resnet18", "random:resnet34"]
    for r in rows:
        dim, images, max_prob = int(r[2]), int(r[3]), float(r[4])
        assert dim == 512 and images == 8 and 1 / dim <= max_prob <= 1.0
