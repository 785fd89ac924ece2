"""Pictures of the mixtures (the paper's Figs. 2-3 drawn by this code): ``mixbench show-mix``.

Every mixed row goes through :class:`mixbench.pretrain.preprocessor.MixPreprocessor`, the same code that mixes
during pretraining (normalise, then mix in-batch on the normalised tensor, so a decayed context fades to the
data set mean), with p = 1 so every sample takes every step. Rows that differ only in semantics or decay use the
same sampler seed and therefore the same partners, coefficients and boxes; the picture isolates that one choice.
Both views of each image (query, key) are shown, mixed alike with the same plan as in the authors' code.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from mixbench.base.io import atomic_write
from mixbench.pretrain.data import ImageFolderViews
from mixbench.pretrain.preprocessor import MixPreprocessor

__all__ = ["load_views", "mixture_rows", "plot_grid", "show_mix"]


def load_views(root: str | Path, num_images: int, size: int, seed: int) -> list[torch.Tensor]:
    """Two MoCo v2 views of ``num_images`` images, one per class folder (classes in order) while they last.

    Returns [query, key], each (num_images, 3, size, size) uint8.
    """
    ds = ImageFolderViews(str(root), aug="moco_v2", size=size, n_views=2)
    first_of_class: dict[int, int] = {}
    for idx, (_, label) in enumerate(ds.samples):
        first_of_class.setdefault(label, idx)
    picks = list(first_of_class.values())[:num_images]
    picks += [i for i in range(len(ds)) if i not in picks][: num_images - len(picks)]  # fewer classes than images
    if len(picks) < 2:
        raise ValueError(f"{root}: need at least 2 images to mix, found {len(ds)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # torchvision's random augmentations draw from torch's generator
        items = [ds[i]["inputs"] for i in picks]
    return [torch.stack([views[v] for views in items]) for v in range(2)]


def mixture_rows(
    views: list[torch.Tensor], seed: int = 0, global_n: int = 3, region_n: int = 3
) -> list[tuple[str, list[torch.Tensor]]]:
    """(label, [query, key] as (N, 3, H, W) float RGB 0-255) for the originals and every mixture shown.

    Rows: originals; global mixture under both semantics; region mixture under both semantics with decay 1.0
    and 0.2; G then R (the authors' semantics, decay 0.2).
    """
    g = lambda sem: dict(n=global_n, p=1.0, semantics=sem)  # noqa: E731
    r = lambda sem, decay: dict(n=region_n, p=1.0, lambda_decay=decay, semantics=sem)  # noqa: E731
    settings = [("originals", {})]
    settings += [(f"G, printed eq. 3 (n={global_n})", dict(global_mix=g("paper_eq"))),
                 (f"G, authors' code (n={global_n})", dict(global_mix=g("authors")))]
    for sem, name in (("paper_eq", "printed eqs. 4-5"), ("authors", "authors' code")):
        for decay in (1.0, 0.2):
            settings.append((f"R, {name}, decay {decay} (n={region_n})", dict(region_mix=r(sem, decay))))
    settings.append(("G+R, authors' code, decay 0.2", dict(global_mix=g("authors"), region_mix=r("authors", 0.2))))

    rows = []
    for label, mix in settings:
        pre = MixPreprocessor(seed=seed, views="both", **mix)  # same seed: same partners/boxes across rows
        out = pre({"inputs": [v.clone() for v in views]}, training=True)["inputs"]
        rows.append((label, [(x * pre.std + pre.mean).clamp(0, 255) for x in out]))
    return rows


def plot_grid(rows: list[tuple[str, list[torch.Tensor]]], out: str | Path, title: str = "") -> Path:
    """One row per mixture, columns = image 1 query, image 1 key, image 2 query, ...; written atomically (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_images = rows[0][1][0].shape[0]
    n_rows, n_cols = len(rows), 2 * n_images
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols + 2.2, 1.3 * n_rows + 0.6), squeeze=False)
    for r, (label, views) in enumerate(rows):
        for i in range(n_images):
            for v, view_name in enumerate(("query", "key")):
                ax = axes[r, 2 * i + v]
                ax.imshow(views[v][i].permute(1, 2, 0).round().to(torch.uint8).numpy())
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"image {i + 1}\n{view_name}", fontsize=7)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write(out, lambda f: f.write(buf.getvalue()))


def show_mix(
    root: str | Path,
    out: str | Path,
    num_images: int = 4,
    size: int = 96,
    seed: int = 0,
    global_n: int = 3,
    region_n: int = 3,
    data_label: str | None = None,
) -> Path:
    """Draw the grid of :func:`mixture_rows` for images of ``root`` (an ImageNet-style split folder) to ``out``.

    ``data_label`` names the data in the title instead of ``root`` (e.g. when ``root`` is a temporary folder).
    """
    views = load_views(root, num_images, size, seed)
    rows = mixture_rows(views, seed, global_n, region_n)
    title = (f"{data_label or root}: MoCo v2 views at {size} px, mixed in-batch with p = 1, sampler seed {seed} "
             "(rows with the same mixture kind share partners and boxes)")
    return plot_grid(rows, out, title)
