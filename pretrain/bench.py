"""Cost of the image mixtures: MoCo training steps with no mixture, global, region and G+R, timed in one run.

Every variant runs the same model (MoCo v2, the same weights and queue), the same batch and the same input
tensors; only the data preprocessor differs (``pretrain.preprocessor.MixPreprocessor`` with the paper's best
settings: global n = 4, region n = 5 with lambda_decay = 0.2, p = 0.5). A step is exactly what mmengine's
Runner runs per iteration: ``model.train_step(data, optim_wrapper)`` (normalise + mix, query
forward/backward, momentum update, key forward, queue update, SGD step). Variants are interleaved over several
rounds (order rotated each round) so machine drift hits all of them alike; the median step time is reported.

Besides the whole step, the preprocessor alone is timed per variant: its extra time over the plain
preprocessor, divided by the plain step, is the mixing cost in % of a step (the issue's target: <= 2%), less
noisy than the ratio of two whole-step medians.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset before each variant); on CPU the process's
peak resident set (``VmHWM`` of /proc/self/status, reset per variant by writing 5 to /proc/self/clear_refs).
The CPU number includes everything resident (Python, torch, the allocator's cache), so compare it between
rows only.

With ``bare=True`` one more row, ``bare``, times the same network work without MoCo's bookkeeping: a plain
encoder's forward + backward + SGD step on the query batch plus a forward of a second encoder on the key batch
(normalised float inputs, no preprocessor, no queue, no momentum update). ``plain`` over ``bare`` img/s is how
close the MoCo step comes to that limit (the issue's target: >= 0.9). ``amp_dtype`` ('bfloat16'/'float16') runs
every variant under mmengine's AmpOptimWrapper (autocast; fp16 with dynamic loss scaling), ``channels_last`` stores
the encoders' weights NHWC.

Run::

    mixbench bench pretrain                                      # CPU: ResNet-18, 64 px, batch 32
    mixbench bench pretrain --device cuda --arch resnet50 --img-size 224 --batch-size 256 --steps 50

With ``--data DIR`` (issue 13) it compares the data pipelines instead, from real JPEG files: the reference PIL
loader and the device view pipeline (``pretrain.device_views``), side by side in one run
(:func:`run_pipeline_bench`)::

    mixbench demo-data data/bench --preset bench                 # 256 JPEGs of 375-500 px
    mixbench bench pretrain --data data/bench --img-size 224 --batch-size 16 --workers 2 --steps 4
    mixbench bench pretrain --data /data/imagenet --device cuda --arch resnet50 --batch-size 256 \
        --workers 16 --amp --channels-last --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["VARIANTS", "main", "run_bench"]

# The paper's best settings: Table 1 (global n = 4), Tables 2-3 (region n = 5, lambda_decay = 0.2),
# Table 4 (p; >= 0.5 suits MoCo).
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "global": {"global_mix": {"n": 4, "p": 0.5}},
    "region": {"region_mix": {"n": 5, "p": 0.5, "lambda_decay": 0.2}},
    "global+region": {
        "global_mix": {"n": 4, "p": 0.5},
        "region_mix": {"n": 5, "p": 0.5, "lambda_decay": 0.2},
    },
}


class _PeakMemory:
    """Per-variant peak memory: CUDA allocator peak, or the CPU process's VmHWM reset through clear_refs."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpu_resettable = device.type == "cpu" and _reset_vmhwm()
        if device.type == "cuda":
            self.kind = "CUDA max_memory_allocated (MiB)"
        elif self.cpu_resettable:
            self.kind = "CPU peak RSS, VmHWM reset per variant (MiB)"
        else:  # no /proc (not Linux): ru_maxrss cannot be reset, rows after the first are upper bounds
            self.kind = "CPU process peak RSS, ru_maxrss, not reset (MiB)"

    def reset(self) -> float:
        """Reset the peak; returns the memory in use at the reset (MiB), the base of the peak's delta."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return torch.cuda.memory_allocated(self.device) / 2**20
        if self.cpu_resettable:
            _reset_vmhwm()
        return self.read_mib()

    def read_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.cpu_resettable:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_vmhwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _optim_wrapper(model: torch.nn.Module, amp_dtype: str | None):
    """SGD as in MoCo v2, in mmengine's OptimWrapper, or its AmpOptimWrapper (bf16: no loss scaling needed)."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    sgd = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    if amp_dtype is None:
        return OptimWrapper(sgd)
    scale = dict(enabled=False) if amp_dtype == "bfloat16" else "dynamic"
    return AmpOptimWrapper(optimizer=sgd, dtype=amp_dtype, loss_scale=scale)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def run_bench(
    arch: str = "resnet18",
    img_size: int = 64,
    batch_size: int = 32,
    steps: int = 10,
    warmup: int = 2,
    rounds: int = 3,
    K: int = 4096,
    device: str = "cpu",
    seed: int = 0,
    amp_dtype: str | None = None,
    channels_last: bool = False,
    bare: bool = False,
) -> tuple[list[dict[str, Any]], str]:
    """Time every variant of :data:`VARIANTS`; returns (rows, memory kind).

    Each row: variant, step_ms (median), steps_per_s, ratio (step_ms / plain step_ms), min_step_ms, ratio_min
    (fastest step / fastest plain step), prep_ms (median
    preprocessor time), mix_cost_pct ((prep_ms - plain prep_ms) / plain step_ms * 100), peak_mib,
    peak_delta_mib (peak minus the memory in use when the variant started), n_steps.
    """

    from mixbench.pretrain.moco import MoCo
    from mixbench.pretrain.preprocessor import MixPreprocessor

    if steps < 1 or rounds < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1, rounds >= 1, warmup >= 0; got {steps}, {rounds}, {warmup}")
    dev = torch.device(device)
    torch.manual_seed(seed)
    # MoCo v2 as in the paper's MoCo runs (MLP head, T = 0.2); K only sizes the queue matmul.
    layout = torch.channels_last if channels_last else torch.preserve_format
    model = MoCo(arch=arch, dim=128, K=K, m=0.999, T=0.2, mlp=True).to(dev, memory_format=layout)
    optim = _optim_wrapper(model, amp_dtype)
    gen = torch.Generator().manual_seed(seed)
    views = [
        torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8, generator=gen) for _ in range(2)
    ]  # the same two augmented views for every variant and step
    data = {"inputs": views, "data_samples": None}
    preps = {name: MixPreprocessor(seed=seed, **cfg).to(dev) for name, cfg in VARIANTS.items()}
    memory = _PeakMemory(dev)
    step_times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    prep_times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    peaks: dict[str, float] = {name: 0.0 for name in VARIANTS}
    deltas: dict[str, float] = {name: 0.0 for name in VARIANTS}
    model.train()

    def step() -> None:
        model.train_step(data, optim)

    if bare:  # same encoders, same precision and layout, none of MoCo's bookkeeping
        from mixbench.pretrain.backbones import build_backbone

        enc_q = build_backbone(arch, num_classes=128).to(dev, memory_format=layout).train()
        enc_k = build_backbone(arch, num_classes=128).to(dev, memory_format=layout).train()
        bare_optim = _optim_wrapper(enc_q, amp_dtype)
        xq, xk = (((v.float() - 127.5) / 64.0).to(dev) for v in views)

        def bare_step() -> None:
            with bare_optim.optim_context(enc_q):
                loss = enc_q(xq).float().pow(2).mean()
                with torch.no_grad():
                    enc_k(xk)
            bare_optim.update_params(loss)

        step_times["bare"], prep_times["bare"], peaks["bare"], deltas["bare"] = [], [], 0.0, 0.0  # timed, not mixed

    for name in VARIANTS:  # warm up every variant (allocator, kernels, autotuning) before timing any
        model.data_preprocessor = preps[name]
        for _ in range(warmup):
            step()
    if bare:
        for _ in range(warmup):
            bare_step()
    names = list(VARIANTS) + (["bare"] if bare else [])
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            base = memory.reset()
            if name == "bare":
                step_times[name].extend(_timed(bare_step, dev) for _ in range(steps))
            else:
                model.data_preprocessor = preps[name]
                for _ in range(steps):
                    step_times[name].append(_timed(step, dev))
                    with torch.no_grad():
                        prep_times[name].append(_timed(lambda p=preps[name]: p(data, True), dev))
            peak = memory.read_mib()
            peaks[name] = max(peaks[name], peak)
            deltas[name] = max(deltas[name], peak - base)
    plain_step = statistics.median(step_times["plain"])
    plain_min = min(step_times["plain"])
    plain_prep = statistics.median(prep_times["plain"])
    rows = []
    for name in names:
        step_s = statistics.median(step_times[name])
        prep_s = statistics.median(prep_times[name]) if prep_times[name] else float("nan")  # bare: no preprocessor
        rows.append(
            {
                "variant": name,
                "step_ms": step_s * 1e3,
                "steps_per_s": 1.0 / step_s,
                "ratio": step_s / plain_step,
                # the fastest step is the least disturbed by other processes on a shared machine (timeit's advice)
                "min_step_ms": min(step_times[name]) * 1e3,
                "ratio_min": min(step_times[name]) / plain_min,
                "prep_ms": prep_s * 1e3,
                "mix_cost_pct": (prep_s - plain_prep) / plain_step * 100,
                "peak_mib": peaks[name],
                "peak_delta_mib": deltas[name],
                "n_steps": len(step_times[name]),
                "img_per_s": batch_size / step_s,
            }
        )
    return rows, memory.kind


def main(args: argparse.Namespace) -> int:
    """``mixbench bench pretrain``: print the table (tabulate); with ``--data``, the data pipelines instead."""
    from tabulate import tabulate

    if getattr(args, "data", None):
        return main_pipelines(args)
    args.img_size = args.img_size or 64
    rows, mem_kind = run_bench(
        arch=args.arch,
        img_size=args.img_size,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        K=args.K,
        device=args.device,
        seed=args.seed,
    )
    headers = [
        "variant",
        "step (ms)",
        "steps/s",
        "ratio vs plain",
        "min step (ms)",
        "ratio of mins",
        "preprocess (ms)",
        "mix cost (% of step)",
        f"peak: {mem_kind}",
        "peak - in use at start (MiB)",
        "timed steps",
    ]
    table = [
        [
            r["variant"],
            f"{r['step_ms']:.1f}",
            f"{r['steps_per_s']:.2f}",
            f"{r['ratio']:.3f}",
            f"{r['min_step_ms']:.1f}",
            f"{r['ratio_min']:.3f}",
            f"{r['prep_ms']:.2f}",
            f"{r['mix_cost_pct']:+.2f}",
            f"{r['peak_mib']:.0f}",
            f"{r['peak_delta_mib']:.1f}",
            r["n_steps"],
        ]
        for r in rows
    ]
    print(
        f"MoCo v2 training step, {args.arch}, {args.img_size} px, batch {args.batch_size}, K {args.K}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}; medians over {args.rounds} rounds x "
        f"{args.steps} steps after {args.warmup} warm-up steps per variant"
    )
    print(tabulate(table, headers=headers))
    print("global: n=4, p=0.5; region: n=5, p=0.5, lambda_decay=0.2; both views mixed (the paper's code)")
    return 0


# ----------------------------------------------------------------------------------------------------------
# Data pipelines (issue 13): the reference PIL loader against the device view pipeline, from real JPEG files.
PIPELINES: dict[str, str] = {  # name -> what the DataLoader workers do (ImageFolderViews.worker_stage)
    "pil": "augment",  # reference: PIL decode + two torchvision views per image in the workers
    "device": "decode",  # workers decode (torchvision.io); views made in batch on the device
    "device-nvjpeg": "read",  # workers read the file; nvjpeg decodes on the GPU (CUDA only)
}
MIX_GR = VARIANTS["global+region"]  # the whole step is MoCo v2 + G + R, the paper's best settings


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


def _cycle(loader):
    while True:
        yield from loader


def run_pipeline_bench(
    data: str | Path,
    arch: str = "resnet18",
    img_size: int = 224,
    batch_size: int = 32,
    workers: int = 2,
    batches: int = 5,
    rounds: int = 2,
    K: int = 4096,
    device: str = "cpu",
    amp: bool = False,
    channels_last: bool = False,
    compile_encoders: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time each pipeline of :data:`PIPELINES` (nvjpeg only on CUDA) in one run, interleaved over ``rounds``.

    Per pipeline and round, two phases of ``batches`` batches each:
    - data alone: next batch from the DataLoader, plus (device pipelines) making both views on the device;
    - whole step: next batch + ``model.train_step`` (views, normalise, G+R mixing, query forward/backward,
      momentum update, key forward, queue update, SGD) - what mmengine's Runner runs per iteration.
    The data phase first drops ``workers * 2 + 1`` batches (the DataLoader's prefetched buffer) untimed.
    Worker CPU is everything done before a batch reaches the data preprocessor (read, decode, PIL views,
    collation), summed over the items of every consumed batch. On CUDA the GPU's busy share is estimated as the
    compute-only step (the same batch again, no loading) over the whole step.

    Returns one row per pipeline: pipeline, worker_stage, data_img_s, step_img_s, worker_cpu_ms (per image),
    gpu_busy (None on CPU), n_images (timed, per phase).
    """
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    from torch.utils.data import DataLoader, default_collate

    from mixbench.pretrain.data import ImageFolderViews, image_list_collate
    from mixbench.pretrain.moco import MoCo
    from mixbench.pretrain.preprocessor import MixPreprocessor

    if batches < 1 or rounds < 1 or workers < 0:
        raise ValueError(f"need batches >= 1, rounds >= 1, workers >= 0; got {batches}, {rounds}, {workers}")
    dev = torch.device(device)
    root = resolve_image_root(data)
    names = [n for n in PIPELINES if n != "device-nvjpeg" or dev.type == "cuda"]
    torch.manual_seed(seed)
    model = MoCo(arch=arch, dim=128, K=K, m=0.999, T=0.2, mlp=True).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_encoders:
        model.encoder_q = torch.compile(model.encoder_q)
        model.encoder_k = torch.compile(model.encoder_k)
    sgd = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    optim = AmpOptimWrapper(dtype="bfloat16", optimizer=sgd) if amp else OptimWrapper(sgd)
    views_cfg = dict(aug="moco_v2", size=img_size, n_views=2, channels_last=channels_last, seed=seed)
    preps, loaders = {}, {}
    for name in names:
        stage = PIPELINES[name]
        preps[name] = MixPreprocessor(seed=seed, **MIX_GR, device_views=None if stage == "augment" else views_cfg)
        preps[name] = preps[name].to(dev)
        ds = ImageFolderViews(
            str(root), aug="moco_v2" if stage == "augment" else None, size=img_size, n_views=2, worker_stage=stage
        )
        if len(ds) < batch_size:
            raise ValueError(f"{root}: {len(ds)} images, fewer than one batch of {batch_size}")
        loaders[name] = _cycle(DataLoader(
            _CpuTimed(ds), batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
            persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
            collate_fn=_CpuTimedCollate(default_collate if stage == "augment" else image_list_collate),
        ))  # fmt: skip
    model.train()
    totals = {n: {"data_s": 0.0, "step_s": 0.0, "cpu_s": 0.0, "images": 0, "cpu_images": 0} for n in names}
    sample_batch: dict[str, Any] = {}

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            model.data_preprocessor = preps[name]
            t = totals[name]
            for i in range(workers * 2 + 1):  # drain the prefetched buffer (and start the workers)
                batch, _ = next(loaders[name])
                if r == 0 and i == 0:  # warm up kernels, allocator, autotuning, compilation
                    sample_batch[name] = batch
                    model.train_step(batch, optim)
            sync()
            start = time.perf_counter()
            for _ in range(batches):
                batch, cpu = next(loaders[name])
                if preps[name].device_views is not None:
                    preps[name].device_views(batch["inputs"], device=dev)
                t["cpu_s"] += cpu
                t["cpu_images"] += batch_size
            sync()
            t["data_s"] += time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(batches):
                batch, cpu = next(loaders[name])
                model.train_step(batch, optim)
                t["cpu_s"] += cpu
                t["cpu_images"] += batch_size
            sync()
            t["step_s"] += time.perf_counter() - start
            t["images"] += batches * batch_size
    rows = []
    for name in names:
        t = totals[name]
        gpu_busy = None
        if dev.type == "cuda":  # compute-only: the same batch again, nothing loaded
            model.data_preprocessor = preps[name]
            sync()
            start = time.perf_counter()
            for _ in range(batches):
                model.train_step(sample_batch[name], optim)
            sync()
            gpu_busy = min(1.0, (time.perf_counter() - start) / batches / (t["step_s"] / (t["images"] / batch_size)))
        rows.append({
            "pipeline": name, "worker_stage": PIPELINES[name], "data_img_s": t["images"] / t["data_s"],
            "step_img_s": t["images"] / t["step_s"], "worker_cpu_ms": t["cpu_s"] / t["cpu_images"] * 1e3,
            "gpu_busy": gpu_busy, "n_images": t["images"],
        })  # fmt: skip
    return rows


def main_pipelines(args: argparse.Namespace) -> int:
    """``mixbench bench pretrain --data DIR``: both pipelines side by side (tabulate)."""
    from tabulate import tabulate

    img_size = args.img_size or 224
    rows = run_pipeline_bench(
        args.data, arch=args.arch, img_size=img_size, batch_size=args.batch_size, workers=args.workers,
        batches=args.steps, rounds=args.rounds, K=args.K, device=args.device, amp=args.amp,
        channels_last=args.channels_last, compile_encoders=args.compile, seed=args.seed,
    )  # fmt: skip
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
    print(
        f"MoCo v2 + G + R from {resolve_image_root(args.data)}: {args.arch}, {img_size} px, batch {args.batch_size}, "
        f"K {args.K}, {args.workers} workers, device {args.device}, torch threads {torch.get_num_threads()}, "
        f"amp {'bf16' if args.amp else 'off'}, channels_last {args.channels_last}, compile {args.compile}; "
        f"{args.rounds} interleaved rounds x {args.steps} batches per phase"
    )
    print(tabulate(table, headers=headers))
    print("data img/s: loader (+ device views); step: loader + views + normalise + G+R mixing + MoCo step; "
          "worker CPU: read/decode/PIL views/collate per image; GPU busy: compute-only step / whole step")  # fmt: skip
    return 0
