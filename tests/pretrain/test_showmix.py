"""``mixbench show-mix``: the rows are the mixtures they claim to be, and the command writes a PNG."""

from __future__ import annotations

import torch
from PIL import Image

from mixbench.base.color import IMAGENET_MEAN
from mixbench.pretrain.showmix import load_views, mixture_rows


def test_rows_show_each_semantics_and_decay(synthetic_root):
    views = load_views(synthetic_root["imagenet"] / "train", num_images=4, size=32, seed=0)
    assert [tuple(v.shape) for v in views] == [(4, 3, 32, 32)] * 2 and views[0].dtype == torch.uint8
    rows = dict(mixture_rows(views, seed=0, global_n=3, region_n=3))
    assert len(rows) == 8
    for v in range(2):
        torch.testing.assert_close(rows["originals"][v], views[v].float(), atol=1e-3, rtol=0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    for name in ("authors' code", "printed eqs. 4-5"):
        plain = rows[f"R, {name}, decay 1.0 (n=3)"][0]
        decayed = rows[f"R, {name}, decay 0.2 (n=3)"][0]
        differs = (plain - decayed).abs().amax(1, keepdim=True) > 1e-3  # (N, 1, H, W)
        assert differs.any()  # the same boxes and partners; only the decayed pixels differ
        # decay on the normalised tensor = a fade towards the data set mean in RGB: m + 0.2 (x - m)
        faded = (mean + 0.2 * (plain - mean)).clamp(0, 255)
        torch.testing.assert_close(decayed[differs.expand_as(decayed)], faded[differs.expand_as(faded)],
                                   atol=2e-3, rtol=0)
    authors = rows["R, authors' code, decay 0.2 (n=3)"][0]
    printed = rows["R, printed eqs. 4-5, decay 0.2 (n=3)"][0]
    faded_share = lambda row, plain: ((row - plain).abs().amax(1) > 1e-3).float().mean()  # noqa: E731
    # the authors decay the context (most of the image), the printed equation only a box intersection
    assert faded_share(authors, rows["R, authors' code, decay 1.0 (n=3)"][0]) > faded_share(
        printed, rows["R, printed eqs. 4-5, decay 1.0 (n=3)"][0])


def test_command_writes_png(synthetic_root, tmp_path):
    from mixbench.cli import main

    out = tmp_path / "grid.png"
    assert main(["show-mix", "--data", str(synthetic_root["imagenet"] / "train"), "--out", str(out),
                 "--images", "3", "--size", "32"]) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 400 and img.height > 400
