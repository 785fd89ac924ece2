"""Sub-commands that evaluate pretrained encoders: ``linear``, ``knn``, ``flatness`` and ``bench pretrain``.

Every command takes the encoder as a checkpoint path or ``random:<arch>`` (the random-init baseline under the
same protocol). Heavy imports (mmengine Runner, matplotlib) happen inside the commands.
"""

from __future__ import annotations

import argparse


def _cfg_options(pairs: list[str] | None) -> dict:
    from mmengine.config import DictAction

    if not pairs:
        return {}
    ns = argparse.Namespace()
    DictAction(option_strings=[], dest="opts")(argparse.ArgumentParser(), ns, pairs)
    return dict(ns.opts)


def _linear(args: argparse.Namespace) -> int:
    from pretrain.linear import run_linear

    result = run_linear(
        args.config, args.checkpoint, args.work_dir, _cfg_options(args.cfg_options), args.launcher
    )
    m = result["metrics"]
    print(
        f"linear eval of {args.checkpoint}: top-1 {m['accuracy/top1'] * 100:.2f}% "
        f"(top-5 {m.get('accuracy/top5', float('nan')) * 100:.2f}%), {result['epochs']} epochs, "
        f"{result['num_classes']} classes, feature dim {result['feature_dim']}"
    )
    return 0


def _knn(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from pretrain.features import load_feature_extractor
    from pretrain.knn import knn_top1
    from pretrain.linear import LabeledImageFolder

    pipeline = [
        dict(type="Resize", size=args.resize_size, antialias=True),
        dict(type="CenterCrop", size=args.img_size),
    ]
    loaders = [
        DataLoader(
            LabeledImageFolder(args.data, split, pipeline),
            batch_size=args.batch_size,
            num_workers=args.workers,
        )
        for split in ("train", "val")
    ]
    extractor = load_feature_extractor(args.checkpoint).to(args.device)
    n_classes = len(loaders[0].dataset.classes)
    r = knn_top1(extractor, *loaders, k=args.k, T=args.T, num_classes=n_classes, device=args.device)
    print(
        f"kNN top-1 {r['top1'] * 100:.2f}% ({args.checkpoint}, {extractor.info.get('method')} "
        f"{extractor.info.get('arch')}, {extractor.feature_dim}-d): k={r['k']}, T={args.T}, "
        f"{r['n_train']} train / {r['n_val']} val images, {n_classes} classes, centre crop {args.img_size}"
    )
    return 0


def _flatness(args: argparse.Namespace) -> int:
    from pretrain.flatness import run_flatness

    return run_flatness(args)


def _bench(args: argparse.Namespace) -> int:
    from pretrain.bench import main

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
    p.add_argument("--cfg-options", nargs="+", metavar="KEY=VALUE", help="override config keys")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.set_defaults(func=_linear)

    p = sub.add_parser("knn", help="weighted kNN top-1 on frozen features (k=200, T=0.1)")
    p.add_argument("--checkpoint", required=True, help="pretraining checkpoint or random:<arch>")
    p.add_argument("--data", required=True, help="ImageNet-style root with train/ and val/ class folders")
    p.add_argument("--k", type=int, default=200)
    p.add_argument("--T", type=float, default=0.1)
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
        "pretrain", help="MoCo step time without/with each mixture (same run, same batch)"
    )
    b.add_argument("--arch", default="resnet18")
    b.add_argument("--img-size", type=int, default=64)
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    b.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    b.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the variants")
    b.add_argument("--K", type=int, default=4096, help="MoCo queue size")
    b.add_argument("--device", default="cpu")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_bench)
