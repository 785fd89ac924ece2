"""Flattening analysis (paper sec. 4.4, Fig. 5): how peaked is the 2048-d output of a pretrained encoder?

The paper plots "the sorted distribution of 2048 dimension outputs from the last layer of ResNet-50" on
ImageNet val images and marks the maximum probability of each model with a dotted line (lower = flatter = the
mixture model). We make that precise as: for each image x the encoder's pooled output v(x) (N, D) (D = 2048
for ResNet-50; CMC: both halves concatenated) becomes the distribution ``p(x) = softmax(v(x) / T)`` (T = 1
unless asked), ``p`` is sorted in decreasing order, and the sorted vectors are averaged over the images. The
curve's first value is then exactly the mean maximum probability, the number printed per checkpoint.

Run::

    mixbench flatness work_dirs/moco/epoch_200.pth work_dirs/moco_gr/epoch_200.pth --data data/imagenet \
        --out fig5.png
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["plot_flatness", "sorted_distribution"]


@torch.no_grad()
def sorted_distribution(
    extractor: Callable[[torch.Tensor], torch.Tensor],
    loader: Iterable[dict[str, Any]],
    T: float = 1.0,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, int]:
    """Mean over images of ``sort(softmax(v / T), descending)``.

    Returns (curve (D,) whose entries sum to 1 and decrease, number of images).
    """
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    total: torch.Tensor | None = None
    n = 0
    for batch in loader:
        v = extractor(batch["inputs"].to(device)).double()  # (B, D)
        p = torch.softmax(v / T, dim=1).sort(dim=1, descending=True).values  # (B, D)
        total = p.sum(0) if total is None else total + p.sum(0)
        n += p.shape[0]
    if total is None:
        raise ValueError("the data loader yielded no images")
    return (total / n).cpu(), n


def plot_flatness(curves: dict[str, torch.Tensor], out: str, title: str = "") -> None:
    """One sorted-distribution curve per checkpoint (log y) and a dotted line at its maximum probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixbench.base.io import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, curve) in enumerate(curves.items()):
        c = f"C{i}"
        ax.plot(range(1, len(curve) + 1), curve.numpy(), color=c, label=f"{name} (max {curve[0]:.2e})")
        ax.axhline(float(curve[0]), color=c, linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("output dimension, sorted by probability")
    ax.set_ylabel("mean probability (softmax of pooled output)")
    ax.set_title(title or "Sorted output distribution (paper Fig. 5)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write(out, lambda f: f.write(buf.getvalue()))
