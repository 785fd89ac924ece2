"""Cost of the image mixtures: MoCo training steps with no mixture, global, region and G+R, timed in one run.

Every variant runs the same model (MoCo v2, the same weights and queue), the same batch and the same input
tensors; only the data preprocessor differs (``pretrain.preprocessor.MixPreprocessor`` with the paper's best
settings: global n = 4, region n = 5 with lambda_decay = 0.2, p = 0.5, in the semantics asked for: by default
the authors' released code, which produced the paper's tables). A step is exactly what mmengine's Runner runs
per iteration: ``model.train_step(data, optim_wrapper)`` (normalise + mix, query forward/backward, momentum
update, key forward, queue update, SGD step). Variants are interleaved over several rounds (order rotated each
round) so machine drift hits all of them alike; the median step time is reported.

Besides the whole step, the preprocessor alone is timed per variant: its extra time over the plain
preprocessor, divided by the plain step, is the mixing cost in % of a step, less noisy than the ratio of two
whole-step medians.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset before each variant); on CPU the process's
peak resident set (``VmHWM`` of /proc/self/status, reset per variant by writing 5 to /proc/self/clear_refs).
The CPU number includes everything resident (Python, torch, the allocator's cache), so compare it between
rows only.

With ``bare=True`` one more row, ``bare``, times the same network work without MoCo's bookkeeping: a plain
encoder's forward + backward + SGD step on the query batch plus a forward of a second encoder on the key batch
(normalised float inputs, no preprocessor, no queue, no momentum update). ``plain`` over ``bare`` img/s is how
close the MoCo step comes to that limit. ``amp_dtype`` ('bfloat16'/'float16') runs every variant under
mmengine's AmpOptimWrapper (autocast; fp16 with dynamic loss scaling), ``channels_last`` stores the encoders'
weights NHWC.

Run::

    mixbench bench pretrain                                      # CPU: ResNet-18, 64 px, batch 32
    mixbench bench pretrain --semantics paper_eq                 # the printed equations instead
    mixbench bench pretrain --device cuda --arch resnet50 --img-size 224 --batch-size 256 --steps 50

The data path (``--data DIR``) has its own bench, :mod:`mixbench.pretrain.bench_data`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mixbench.pretrain.mixing import SEMANTICS

__all__ = ["SEMANTICS_LABELS", "VARIANTS", "main", "run_bench", "variant_mixes"]

# The paper's best settings: Table 1 (global n = 4), Tables 2-3 (region n = 5, lambda_decay = 0.2),
# Table 4 (p; >= 0.5 suits MoCo). The semantics are added by :func:`variant_mixes`.
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "global": {"global_mix": {"n": 4, "p": 0.5}},
    "region": {"region_mix": {"n": 5, "p": 0.5, "lambda_decay": 0.2}},
    "global+region": {
        "global_mix": {"n": 4, "p": 0.5},
        "region_mix": {"n": 5, "p": 0.5, "lambda_decay": 0.2},
    },
}
SEMANTICS_LABELS = {"authors": "the authors' released code", "paper_eq": "the printed equations"}


def variant_mixes(semantics: str) -> dict[str, dict[str, Any]]:
    """:data:`VARIANTS` with ``semantics`` set on every mixture: MixPreprocessor keyword arguments per variant."""
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
    return {name: {key: {**mix, "semantics": semantics} for key, mix in cfg.items()} for name, cfg in VARIANTS.items()}


def mixture_semantics(summary: dict[str, Any]) -> str | None:
    """The semantics a preprocessor mixes with (from its ``summary()``); None when it does not mix."""
    used = {mix["semantics"] for mix in (summary["global"], summary["region"]) if mix is not None}
    if len(used) > 1:
        raise ValueError(f"global and region mixtures differ in semantics: {sorted(used)}")
    return used.pop() if used else None


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


def optim_wrapper(model: torch.nn.Module, amp_dtype: str | None):
    """SGD as in MoCo v2, in mmengine's OptimWrapper, or its AmpOptimWrapper (bf16: no loss scaling needed)."""
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    sgd = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    if amp_dtype is None:
        return OptimWrapper(sgd)
    scale = dict(enabled=False) if amp_dtype == "bfloat16" else "dynamic"
    return AmpOptimWrapper(optimizer=sgd, dtype=amp_dtype, loss_scale=scale)


def bench_model(arch: str, K: int, device: torch.device, channels_last: bool = False) -> torch.nn.Module:
    """MoCo v2 as in the paper's MoCo runs (MLP head, T = 0.2); K only sizes the queue matmul."""
    from mixbench.pretrain.moco import MoCo

    layout = torch.channels_last if channels_last else torch.preserve_format
    return MoCo(arch=arch, dim=128, K=K, m=0.999, T=0.2, mlp=True).to(device, memory_format=layout)


def rotated(names: list[str], r: int) -> list[str]:
    """Round ``r``'s order: the list rotated by r, so no variant always runs first (after a cold cache)."""
    return names[r % len(names) :] + names[: r % len(names)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def _bare_step(arch: str, amp_dtype: str | None, channels_last: bool, views: list[torch.Tensor],
               device: torch.device) -> Callable[[], None]:
    """Same encoders, same precision and layout, none of MoCo's bookkeeping."""
    from mixbench.pretrain.backbones import build_backbone

    layout = torch.channels_last if channels_last else torch.preserve_format
    enc_q = build_backbone(arch, num_classes=128).to(device, memory_format=layout).train()
    enc_k = build_backbone(arch, num_classes=128).to(device, memory_format=layout).train()
    optim = optim_wrapper(enc_q, amp_dtype)
    xq, xk = (((v.float() - 127.5) / 64.0).to(device) for v in views)

    def step() -> None:
        with optim.optim_context(enc_q):
            loss = enc_q(xq).float().pow(2).mean()
            with torch.no_grad():
                enc_k(xk)
        optim.update_params(loss)

    return step


def _time_rounds(steps_by_name: dict[str, Callable[[], None]], preps: dict[str, Callable[[], Any]],
                 steps: int, rounds: int, device: torch.device) -> tuple[dict[str, dict[str, Any]], str]:
    """Interleaved rounds: per name, step times, preprocessor times (mixed variants), peak and peak delta;
    and the kind of peak memory measured."""
    memory = _PeakMemory(device)
    out = {name: {"step": [], "prep": [], "peak": 0.0, "delta": 0.0} for name in steps_by_name}
    names = list(steps_by_name)
    for r in range(rounds):
        for name in rotated(names, r):
            base = memory.reset()
            for _ in range(steps):
                out[name]["step"].append(_timed(steps_by_name[name], device))
                if name in preps:
                    with torch.no_grad():
                        out[name]["prep"].append(_timed(preps[name], device))
            peak = memory.read_mib()
            out[name]["peak"] = max(out[name]["peak"], peak)
            out[name]["delta"] = max(out[name]["delta"], peak - base)
    return out, memory.kind


def _rows(times: dict[str, dict[str, Any]], semantics: dict[str, str | None], batch_size: int) -> list[dict]:
    plain, rows = times["plain"], []
    plain_step, plain_min = statistics.median(plain["step"]), min(plain["step"])
    plain_prep = statistics.median(plain["prep"])
    for name, t in times.items():
        step_s = statistics.median(t["step"])
        prep_s = statistics.median(t["prep"]) if t["prep"] else float("nan")  # bare: no preprocessor
        rows.append({
            "variant": name, "semantics": semantics.get(name), "step_ms": step_s * 1e3, "steps_per_s": 1.0 / step_s,
            "ratio": step_s / plain_step,
            # the fastest step is the least disturbed by other processes on a shared machine (timeit's advice)
            "min_step_ms": min(t["step"]) * 1e3, "ratio_min": min(t["step"]) / plain_min,
            "prep_ms": prep_s * 1e3, "mix_cost_pct": (prep_s - plain_prep) / plain_step * 100,
            "peak_mib": t["peak"], "peak_delta_mib": t["delta"], "n_steps": len(t["step"]),
            "img_per_s": batch_size / step_s,
        })  # fmt: skip
    return rows


def run_bench(
    arch: str = "resnet18", img_size: int = 64, batch_size: int = 32, steps: int = 10, warmup: int = 2,
    rounds: int = 3, K: int = 4096, device: str = "cpu", seed: int = 0, amp_dtype: str | None = None,
    channels_last: bool = False, bare: bool = False, semantics: str = "authors",
) -> tuple[list[dict[str, Any]], str]:  # fmt: skip
    """Time every variant of :data:`VARIANTS` under ``semantics``; returns (rows, memory kind).

    Each row: variant, semantics (what its preprocessor mixed with; None for plain and bare), step_ms (median),
    steps_per_s, ratio (step_ms / plain step_ms), min_step_ms, ratio_min (fastest step / fastest plain step),
    prep_ms (median preprocessor time), mix_cost_pct ((prep_ms - plain prep_ms) / plain step_ms * 100), peak_mib,
    peak_delta_mib (peak minus the memory in use when the variant started), n_steps, img_per_s.
    """
    from mixbench.pretrain.preprocessor import MixPreprocessor

    if steps < 1 or rounds < 1 or warmup < 0:
        raise ValueError(f"need steps >= 1, rounds >= 1, warmup >= 0; got {steps}, {rounds}, {warmup}")
    mixes = variant_mixes(semantics)
    dev = torch.device(device)
    torch.manual_seed(seed)
    model = bench_model(arch, K, dev, channels_last).train()
    optim = optim_wrapper(model, amp_dtype)
    gen = torch.Generator().manual_seed(seed)
    views = [
        torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8, generator=gen) for _ in range(2)
    ]  # the same two augmented views for every variant and step
    data = {"inputs": views, "data_samples": None}
    preps = {name: MixPreprocessor(seed=seed, **cfg).to(dev) for name, cfg in mixes.items()}

    def step_with(prep: MixPreprocessor) -> Callable[[], None]:
        def step() -> None:
            model.data_preprocessor = prep
            model.train_step(data, optim)

        return step

    step_fns = {name: step_with(prep) for name, prep in preps.items()}
    if bare:
        step_fns["bare"] = _bare_step(arch, amp_dtype, channels_last, views, dev)
    for fn in step_fns.values():  # warm up every variant (allocator, kernels, autotuning) before timing any
        for _ in range(warmup):
            fn()
    prep_fns = {name: (lambda p=prep: p(data, True)) for name, prep in preps.items()}
    times, memory_kind = _time_rounds(step_fns, prep_fns, steps, rounds, dev)
    used = {name: mixture_semantics(prep.summary()) for name, prep in preps.items()}
    return _rows(times, used, batch_size), memory_kind


def _table(rows: list[dict[str, Any]], mem_kind: str) -> str:
    from tabulate import tabulate

    headers = ["variant", "step (ms)", "steps/s", "ratio vs plain", "min step (ms)", "ratio of mins",
               "preprocess (ms)", "mix cost (% of step)", f"peak: {mem_kind}", "peak - in use at start (MiB)",
               "timed steps"]  # fmt: skip
    table = [
        [r["variant"], f"{r['step_ms']:.1f}", f"{r['steps_per_s']:.2f}", f"{r['ratio']:.3f}",
         f"{r['min_step_ms']:.1f}", f"{r['ratio_min']:.3f}", f"{r['prep_ms']:.2f}", f"{r['mix_cost_pct']:+.2f}",
         f"{r['peak_mib']:.0f}", f"{r['peak_delta_mib']:.1f}", r["n_steps"]]
        for r in rows
    ]  # fmt: skip
    return tabulate(table, headers=headers)


def semantics_line(rows: list[dict[str, Any]]) -> str:
    """What the mixed rows ran: the settings of :data:`VARIANTS` and the semantics their preprocessors used."""
    used = sorted({r["semantics"] for r in rows if r.get("semantics")})
    named = ", ".join(f"{s} ({SEMANTICS_LABELS[s]})" for s in used)
    settings = "; ".join(f"{key.removesuffix('_mix')}: " + ", ".join(f"{k}={v}" for k, v in mix.items())
                         for key, mix in VARIANTS["global+region"].items())  # fmt: skip
    return f"{settings}; both views mixed; semantics: {named}"


def main(args: argparse.Namespace) -> int:
    """``mixbench bench pretrain``: print the table of :func:`run_bench` (tabulate)."""
    img_size = args.img_size or 64
    try:
        rows, mem_kind = run_bench(
            arch=args.arch, img_size=img_size, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
            rounds=args.rounds, K=args.K, device=args.device, seed=args.seed, semantics=args.semantics,
        )  # fmt: skip
    except ValueError as err:  # bad --steps/--rounds/--warmup or --semantics
        print(f"mixbench bench: error: {err}", file=sys.stderr)
        return 2
    print(
        f"MoCo v2 training step, {args.arch}, {img_size} px, batch {args.batch_size}, K {args.K}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}; medians over {args.rounds} rounds x "
        f"{args.steps} steps after {args.warmup} warm-up steps per variant"
    )
    print(_table(rows, mem_kind))
    print(semantics_line(rows))
    return 0
