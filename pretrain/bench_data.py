"""The data path of pretraining, timed: the reference PIL loader against the device view pipeline
(``pretrain.device_views``), from real JPEG files, side by side in one run (:func:`run_data_bench`).

Every pipeline feeds the same MoCo v2 + G + R step (the paper's best mixture settings,
``pretrain.bench_mixing.VARIANTS['global+region']``, in the semantics asked for). Run::

    mixbench demo-data data/bench --preset bench                 # 256 JPEGs of 375-500 px
    mixbench bench pretrain --data data/bench --img-size 224 --batch-size 16 --workers 2 --steps 4
    mixbench bench pretrain --data /data/imagenet --device cuda --arch resnet50 --batch-size 256 \\
        --workers 16 --amp --channels-last --steps 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from mixbench.pretrain.bench_mixing import (
    SEMANTICS_LABELS,
    bench_model,
    mixture_semantics,
    optim_wrapper,
    rotated,
    sync,
    variant_mixes,
)

__all__ = ["PIPELINES", "main", "resolve_image_root", "run_data_bench"]

PIPELINES: dict[str, str] = {  # name -> what the DataLoader workers do (ImageFolderViews.worker_stage)
    "pil": "augment",  # reference: PIL decode + two torchvision views per image in the workers
    "device": "decode",  # workers decode (torchvision.io); views made in batch on the device
    "device-nvjpeg": "read",  # workers read the file; nvjpeg decodes on the GPU (CUDA only)
}


class _CpuTimed:
    """Wraps a data set: each item comes with the CPU seconds its worker spent making it (``process_time``:
    all threads of the worker process; DataLoader workers run one torch thread)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        start = time.process_time()
        item = self.dataset[idx]
        return item, time.process_time() - start


class _CpuTimedCollate:
    """Collates ``_CpuTimed`` items; returns (batch, worker CPU seconds of the batch, collation included)."""

    def __init__(self, collate: Callable) -> None:
        self.collate = collate

    def __call__(self, pairs: list) -> tuple[Any, float]:
        start = time.process_time()
        batch = self.collate([item for item, _ in pairs])
        return batch, sum(cpu for _, cpu in pairs) + time.process_time() - start


def resolve_image_root(data: str | Path) -> Path:
    """An ImageNet-style class folder under DATA: DATA/imagenet/train (mixbench demo-data), DATA/train or DATA."""
    data = Path(data)
    for root in (data / "imagenet" / "train", data / "train", data):
        if root.is_dir() and any(p.is_dir() for p in root.iterdir()):
            return root
    raise FileNotFoundError(f"{data}: no ImageNet-style <class>/*.JPEG folder in it, in train/ or imagenet/train/")


def _cycle(loader) -> Iterator:
    while True:
        yield from loader


def _pipeline(stage: str, root: Path, img_size: int, batch_size: int, workers: int, channels_last: bool,
              seed: int, mix: dict[str, Any]):
    """(MixPreprocessor, endless loader of (batch, worker CPU s)) of one pipeline."""
    from torch.utils.data import DataLoader, default_collate

    from mixbench.pretrain.data import ImageFolderViews, image_list_collate
    from mixbench.pretrain.preprocessor import MixPreprocessor

    views_cfg = dict(aug="moco_v2", size=img_size, n_views=2, channels_last=channels_last, seed=seed)
    prep = MixPreprocessor(seed=seed, **mix, device_views=None if stage == "augment" else views_cfg)
    ds = ImageFolderViews(
        str(root), aug="moco_v2" if stage == "augment" else None, size=img_size, n_views=2, worker_stage=stage
    )
    if len(ds) < batch_size:
        raise ValueError(f"{root}: {len(ds)} images, fewer than one batch of {batch_size}")
    loader = DataLoader(
        _CpuTimed(ds), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
        collate_fn=_CpuTimedCollate(default_collate if stage == "augment" else image_list_collate),
    )  # fmt: skip
    return prep, _cycle(loader)


def _time_round(model, optim, prep, loader: Iterator, batches: int, batch_size: int, drain: int, warm: bool,
                total: dict[str, float], device: torch.device) -> Any:
    """One round of one pipeline: the data phase, then the whole-step phase, added to ``total``.

    First ``drain`` batches (the DataLoader's prefetched buffer) are dropped untimed; with ``warm`` the first of
    them also runs one step (kernels, allocator, autotuning, compilation) and is returned.
    """
    model.data_preprocessor = prep
    first = None
    for i in range(drain):
        batch, _ = next(loader)
        if warm and i == 0:
            first = batch
            model.train_step(batch, optim)
    for phase in ("data_s", "step_s"):
        sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            batch, cpu = next(loader)
            if phase == "step_s":
                model.train_step(batch, optim)
            elif prep.device_views is not None:
                prep.device_views(batch["inputs"], device=device)
            total["cpu_s"] += cpu
            total["cpu_images"] += batch_size
        sync(device)
        total[phase] += time.perf_counter() - start
    return first


def _gpu_busy(model, optim, prep, batch, batches: int, step_s_per_batch: float, device: torch.device) -> float:
    """Compute-only step (the same batch again, nothing loaded) over the whole step."""
    model.data_preprocessor = prep
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        model.train_step(batch, optim)
    sync(device)
    return min(1.0, (time.perf_counter() - start) / batches / step_s_per_batch)


def run_data_bench(
    data: str | Path, arch: str = "resnet18", img_size: int = 224, batch_size: int = 32, workers: int = 2,
    batches: int = 5, rounds: int = 2, K: int = 4096, device: str = "cpu", amp: bool = False,
    channels_last: bool = False, compile_encoders: bool = False, seed: int = 0, semantics: str = "authors",
) -> list[dict[str, Any]]:  # fmt: skip
    """Time each pipeline of :data:`PIPELINES` (nvjpeg only on CUDA) in one run, interleaved over ``rounds``.

    Per pipeline and round, two phases of ``batches`` batches each:
    - data alone: next batch from the DataLoader, plus (device pipelines) making both views on the device;
    - whole step: next batch + ``model.train_step`` (views, normalise, G+R mixing, query forward/backward,
      momentum update, key forward, queue update, SGD) - what mmengine's Runner runs per iteration.
    Worker CPU is everything done before a batch reaches the data preprocessor (read, decode, PIL views,
    collation), summed over the items of every consumed batch. On CUDA the GPU's busy share is estimated as the
    compute-only step (the same batch again, no loading) over the whole step.

    Returns one row per pipeline: pipeline, worker_stage, semantics, data_img_s, step_img_s, worker_cpu_ms (per
    image), gpu_busy (None on CPU), n_images (timed, per phase).
    """
    if batches < 1 or rounds < 1 or workers < 0:
        raise ValueError(f"need batches >= 1, rounds >= 1, workers >= 0; got {batches}, {rounds}, {workers}")
    mix = variant_mixes(semantics)["global+region"]
    dev = torch.device(device)
    root = resolve_image_root(data)
    names = [n for n in PIPELINES if n != "device-nvjpeg" or dev.type == "cuda"]
    torch.manual_seed(seed)
    model = bench_model(arch, K, dev, channels_last).train()
    if compile_encoders:
        model.encoder_q = torch.compile(model.encoder_q)
        model.encoder_k = torch.compile(model.encoder_k)
    optim = optim_wrapper(model, "bfloat16" if amp else None)
    pipes = {n: _pipeline(PIPELINES[n], root, img_size, batch_size, workers, channels_last, seed, mix)
             for n in names}  # fmt: skip
    preps = {n: prep.to(dev) for n, (prep, _) in pipes.items()}
    totals = {n: {"data_s": 0.0, "step_s": 0.0, "cpu_s": 0.0, "cpu_images": 0} for n in names}
    first: dict[str, Any] = {}
    for r in range(rounds):
        for name in rotated(names, r):
            batch = _time_round(model, optim, preps[name], pipes[name][1], batches, batch_size, workers * 2 + 1,
                                r == 0, totals[name], dev)  # fmt: skip
            first.setdefault(name, batch)
    rows = []
    for name in names:
        t, images = totals[name], rounds * batches * batch_size
        busy = None
        if dev.type == "cuda":
            busy = _gpu_busy(model, optim, preps[name], first[name], batches, t["step_s"] / (rounds * batches), dev)
        rows.append({
            "pipeline": name, "worker_stage": PIPELINES[name], "semantics": mixture_semantics(preps[name].summary()),
            "data_img_s": images / t["data_s"],
            "step_img_s": images / t["step_s"], "worker_cpu_ms": t["cpu_s"] / t["cpu_images"] * 1e3,
            "gpu_busy": busy, "n_images": images,
        })  # fmt: skip
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    ref = rows[0]
    table = [
        [
            r["pipeline"], r["worker_stage"], f"{r['data_img_s']:.1f}", f"{r['step_img_s']:.1f}",
            f"{r['step_img_s'] / ref['step_img_s']:.2f}", f"{r['worker_cpu_ms']:.2f}",
            f"{r['worker_cpu_ms'] / ref['worker_cpu_ms']:.3f}",
            "n/a (CPU)" if r["gpu_busy"] is None else f"{r['gpu_busy'] * 100:.0f}%", r["n_images"],
        ]
        for r in rows
    ]  # fmt: skip
    headers = ["pipeline", "workers do", "data img/s", "step img/s", "step speed vs pil", "worker CPU ms/img",
               "worker CPU vs pil", "GPU busy", "timed images/phase"]  # fmt: skip
    return tabulate(table, headers=headers)


def main(args: argparse.Namespace) -> int:
    """``mixbench bench pretrain --data DIR``: every pipeline side by side (tabulate)."""
    img_size = args.img_size or 224
    try:
        rows = run_data_bench(
            args.data, arch=args.arch, img_size=img_size, batch_size=args.batch_size, workers=args.workers,
            batches=args.steps, rounds=args.rounds, K=args.K, device=args.device, amp=args.amp,
            channels_last=args.channels_last, compile_encoders=args.compile, seed=args.seed,
            semantics=args.semantics,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as err:  # bad --data folder, too few images, bad --semantics
        print(f"mixbench bench: error: {err}", file=sys.stderr)
        return 2
    used = rows[0]["semantics"]
    print(
        f"MoCo v2 + G + R ({used}: {SEMANTICS_LABELS[used]}) from {resolve_image_root(args.data)}: {args.arch}, "
        f"{img_size} px, batch {args.batch_size}, K {args.K}, {args.workers} workers, device {args.device}, "
        f"torch threads {torch.get_num_threads()}, amp {'bf16' if args.amp else 'off'}, channels_last "
        f"{args.channels_last}, compile {args.compile}; {args.rounds} interleaved rounds x {args.steps} batches "
        "per phase"
    )
    print(_table(rows))
    print("data img/s: loader (+ device views); step: loader + views + normalise + G+R mixing + MoCo step; "
          "worker CPU: read/decode/PIL views/collate per image; GPU busy: compute-only step / whole step")  # fmt: skip
    return 0
