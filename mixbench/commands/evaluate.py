"""Sub-commands that evaluate pretrained encoders: ``linear``, ``knn``, ``flatness`` and ``bench pretrain``.

Every command takes the encoder as a checkpoint path or ``random:<arch>`` (the random-init baseline under the
same protocol). Heavy imports (mmengine Runner, matplotlib) happen inside the commands.
"""

from __future__ import annotations

import argparse

from mixbench.base import launch
from mixbench.base.config import add_cfg_options
from mixbench.base.precision import AMP_HELP


def _linear(args: argparse.Namespace) -> int:
    import sys

    from mixbench.base.config import parse_cfg_options, resolve_config
    from mixbench.base.hooks import NonFiniteLossError
    from mixbench.base.locks import WorkDirError
    from mixbench.base.safe_load import UnsafeCheckpointError
    from mixbench.evaluate import load_feature_extractor
    from mixbench.pretrain.linear import run_linear

    try:
        config, cfg_options = resolve_config(args.config), parse_cfg_options(args.cfg_options)
        result = run_linear(config, args.checkpoint, args.work_dir, cfg_options, args.launcher, amp=args.amp,
                            extractor=load_feature_extractor(args.checkpoint))
    # Errors whose message names the file and the problem (a diverged run, a held work dir, unreadable data, a
    # checkpoint that would need pickled code).
    except (FileNotFoundError, ValueError, NonFiniteLossError, WorkDirError, UnsafeCheckpointError) as err:
        print(f"mixbench linear: error: {err}", file=sys.stderr)
        return 2
    m = result["metrics"]
    print(
        f"linear eval of {args.checkpoint}: top-1 {m['accuracy/top1'] * 100:.2f}% "
        f"(top-5 {m.get('accuracy/top5', float('nan')) * 100:.2f}%), {result['epochs']} epochs, "
        f"{result['num_classes']} classes, feature dim {result['feature_dim']}"
    )
    return 0


def _image_folder(args: argparse.Namespace, split: str, max_per_class: int | None = None):
    """``DATA/<split>`` through the one image-folder data set, resized and centre-cropped for evaluation."""
    from mixbench.pretrain.data import ImageFolderViews

    pipeline = [
        dict(type="Resize", size=args.resize_size, antialias=True),
        dict(type="CenterCrop", size=args.img_size),
    ]
    return ImageFolderViews(f"{args.data}/{split}", aug=None, n_views=1, pipeline=pipeline,
                            max_per_class=max_per_class)


def _knn(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from mixbench.evaluate import load_feature_extractor
    from mixbench.pretrain.data import eval_collate
    from mixbench.pretrain.knn import KNN_K, KNN_T, knn_top1

    loaders = [
        DataLoader(_image_folder(args, split), batch_size=args.batch_size, num_workers=args.workers,
                   collate_fn=eval_collate)
        for split in ("train", "val")
    ]
    extractor = load_feature_extractor(args.checkpoint).to(args.device)
    n_classes = len(loaders[0].dataset.classes)
    T = KNN_T if args.T is None else args.T
    r = knn_top1(extractor, *loaders, k=KNN_K if args.k is None else args.k, T=T, num_classes=n_classes,
                 device=args.device)
    print(
        f"kNN top-1 {r['top1'] * 100:.2f}% ({args.checkpoint}, {extractor.info.get('method')} "
        f"{extractor.info.get('arch')}, {extractor.feature_dim}-d): k={r['k']}, T={T}, "
        f"{r['n_train']} train / {r['n_val']} val images, {n_classes} classes, centre crop {args.img_size}"
    )
    return 0


def _flatness(args: argparse.Namespace) -> int:
    """``mixbench flatness CKPT [CKPT ...] --data DIR --out fig.png``: plot and print the mean max
    probability."""
    from tabulate import tabulate
    from torch.utils.data import DataLoader

    from mixbench.evaluate import load_feature_extractor
    from mixbench.pretrain.data import eval_collate
    from mixbench.pretrain.flatness import plot_flatness, sorted_distribution

    dataset = _image_folder(args, args.split, max_per_class=args.max_per_class)
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, collate_fn=eval_collate)
    curves: dict = {}  # name -> sorted mean distribution (D,)
    rows = []
    for spec in args.checkpoints:
        extractor = load_feature_extractor(spec).to(args.device)
        curve, n = sorted_distribution(extractor, loader, T=args.T, device=args.device)
        name = spec if spec not in curves else f"{spec} ({len(curves)})"
        curves[name] = curve
        rows.append(
            [
                name,
                extractor.info.get("method"),
                len(curve),
                n,
                f"{float(curve[0]):.4e}",
                f"{float(curve[:10].sum()):.4f}",
            ]
        )
    plot_flatness(curves, args.out)
    print(tabulate(rows, headers=["checkpoint", "method", "dim", "images", "mean max prob", "top-10 mass"]))
    print(
        f"p = softmax(pooled output / T), T = {args.T}; images: {dataset.root} (centre crop {args.img_size})"
    )
    print(f"wrote {args.out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.data:
        from mixbench.pretrain.bench_data import main
    else:
        from mixbench.pretrain.bench_mixing import main
    return main(args)


def _add_image_args(p: argparse.ArgumentParser, img_size: int, resize_size: int) -> None:
    p.add_argument("--img-size", type=int, default=img_size, help="centre crop side")
    p.add_argument("--resize-size", type=int, default=resize_size, help="Resize before the centre crop")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("linear", help="linear evaluation of a frozen encoder (mmengine Runner)")
    p.add_argument("config", help="configs/linear/*.py")
    p.add_argument(
        "--checkpoint", required=True, help="pretraining checkpoint, torchvision state_dict or random:<arch>"
    )
    p.add_argument("--work-dir", default=None, help="default: work_dirs/linear/<config>_<checkpoint>")
    add_cfg_options(p)
    p.add_argument("--launcher", choices=launch.LAUNCHERS, default="none")
    p.add_argument("--amp", action="store_true", help=AMP_HELP)
    p.set_defaults(func=_linear)

    p = sub.add_parser("knn", help="weighted kNN top-1 on frozen features (the InstDisc/MoCo vote)")
    p.add_argument("--checkpoint", required=True, help="pretraining checkpoint or random:<arch>")
    p.add_argument("--data", required=True, help="ImageNet-style root with train/ and val/ class folders")
    # defaults resolved when the command runs: pretrain.knn holds them and imports torch, which --help does not need
    p.add_argument("--k", type=int, default=None, help="neighbours (default: pretrain.knn.KNN_K)")
    p.add_argument("--T", type=float, default=None, help="temperature (default: pretrain.knn.KNN_T)")
    _add_image_args(p, 224, 256)
    p.set_defaults(func=_knn)

    p = sub.add_parser("flatness", help="paper Fig. 5: sorted output distribution per checkpoint")
    p.add_argument("checkpoints", nargs="+", help="pretraining checkpoints (or random:<arch>)")
    p.add_argument("--data", required=True, help="ImageNet-style root (images from its --split folder)")
    p.add_argument("--split", default="val")
    p.add_argument("--out", required=True, help="output figure (.png)")
    p.add_argument("--T", type=float, default=1.0, help="softmax temperature over the pooled output")
    p.add_argument("--max-per-class", type=int, default=None, help="cap images per class")
    _add_image_args(p, 224, 256)
    p.set_defaults(func=_flatness)

    p = sub.add_parser("bench", help="benchmarks")
    bench_sub = p.add_subparsers(dest="bench_target", required=True, metavar="TARGET")
    b = bench_sub.add_parser(
        "pretrain",
        help="MoCo step time without/with each mixture (same run, same batch); with --data, the PIL loader vs "
        "the device view pipeline from JPEG files",
    )
    b.add_argument("--arch", default="resnet18")
    b.add_argument("--img-size", type=int, default=None, help="view side (default 64; 224 with --data)")
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--steps", type=int, default=10, help="timed steps (--data: batches per phase) per round")
    b.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    b.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the variants")
    b.add_argument("--K", type=int, default=4096, help="MoCo queue size")
    b.add_argument("--device", default="cpu")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--semantics", default="authors", help="mixture semantics timed: 'authors' (the released code, "
                   "which produced the paper's tables) or 'paper_eq' (the printed equations)")
    b.add_argument("--data", default=None, help="ImageNet-style JPEG folder: bench the data path instead")
    b.add_argument("--workers", type=int, default=_default_workers(), help="DataLoader workers (--data)")
    b.add_argument("--amp", action="store_true", help="bf16 autocast (AmpOptimWrapper; CUDA, --data)")
    b.add_argument("--channels-last", action="store_true", help="channels_last model and views (--data)")
    b.add_argument("--compile", action="store_true", help="torch.compile both encoders (--data)")
    b.set_defaults(func=_bench)


def _default_workers() -> int:
    """One worker per core this process may use, at most 16 (MoCo's official code used 32 per 8-GPU node)."""
    import os

    return max(1, min(16, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
