"""``mixbench show-mix [--data DIR] [--out PNG]``: a picture of every mixture, as the paper's Figs. 2-3.

Without ``--data`` it uses the synthetic ImageNet folder of ``mixbench demo-data data/demo``
(``data/demo/imagenet/train``); if that is absent it generates the same data (preset 'demo', seed 0, a few
seconds) in a temporary folder and removes it afterwards. The picture committed under ``results/show_mix/`` is::

    mixbench show-mix --out results/show_mix/mixtures.png
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

DEFAULT_DATA = Path("data/demo/imagenet/train")
DEFAULT_OUT = "results/show_mix/mixtures.png"


def run(args: argparse.Namespace) -> int:
    from mixbench.pretrain.showmix import show_mix

    options = dict(num_images=args.images, size=args.size, seed=args.seed, global_n=args.global_n,
                   region_n=args.region_n)
    if args.data:
        out = show_mix(args.data, args.out, **options)
    elif DEFAULT_DATA.is_dir():
        out = show_mix(DEFAULT_DATA, args.out, data_label="synthetic demo data (mixbench demo-data)", **options)
    else:
        from mixbench.synthetic import generate

        with tempfile.TemporaryDirectory(prefix="mixbench-show-mix-") as tmp:
            print(f"{DEFAULT_DATA} not found: generating the synthetic demo data (preset 'demo', seed 0) in {tmp}")
            root = generate(tmp, seed=0, preset="demo")["imagenet"] / "train"
            out = show_mix(root, args.out, data_label="synthetic demo data (mixbench demo-data)", **options)
    print(f"wrote {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show-mix", help="PNG grid of the global/region mixtures under both semantics (Figs. 2-3)")
    p.add_argument("--data", help=f"ImageNet-style split folder <class>/<image> (default {DEFAULT_DATA})")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output PNG (default {DEFAULT_OUT})")
    p.add_argument("--images", type=int, default=4, help="images (one per class while classes last)")
    p.add_argument("--size", type=int, default=96, help="crop size of the MoCo v2 views")
    p.add_argument("--seed", type=int, default=0, help="seed of the augmentations and the mixture sampler")
    p.add_argument("--global-n", type=int, default=3, help="images per global mixture (n - 1 steps)")
    p.add_argument("--region-n", type=int, default=3, help="images per region mixture (n - 1 boxes)")
    p.set_defaults(func=run)
