#!/usr/bin/env python3
"""The device check: set up mixbench on a bare one-GPU machine from carried wheels, then measure.

    python tools/gpu_check.py --prepare              # here, with the package index: fill .gpu_carry/ (~7 MiB)
    bash tools/gpu_check.sh --dry-run                # anywhere: plan every step, check the set-up, no CUDA
    bash tools/gpu_check.sh                          # on the GPU machine (device tool: carry ['.gpu_carry'])

The lent machines have no network, Python 3.12 with their own torch (2.11, CUDA 13.0), torchvision 0.26 and nvcc,
and no mmcv/mmengine/mmdet/pycocotools. So the check runs on the image's torch and brings, in ``.gpu_carry/``
(ignored by git, named in the device tool's ``carry``), cp312 wheels of what the image lacks and mmcv's
source, at the versions mixbench/constraints.txt pins. Set-up (``tools/gpu_setup.py``; stdlib only, before anything
of mixbench is imported):

1. ``pip install --no-index --no-deps --target SITE .gpu_carry/wheels/*.whl`` (setuptools < 82 among them:
   mmengine's ``mmdet::`` configs and mmcv's setup.py import ``pkg_resources``);
2. build mmcv with its CPU ops from the carried source (C++20 patch as in .ci/bootstrap.sh), 16 jobs, the GPU
   hidden from its setup.py (which would otherwise compile CUDA kernels); CUDA tensors of its ops then go to
   torchvision (``mixbench.transfer.ops_backend``), which is part of what this check measures;
3. ``pip install --no-deps --no-build-isolation --target SITE .`` (mixbench itself);

then this script re-runs itself with ``PYTHONPATH=SITE`` once per measurement (``--steps`` picks some), so that a
step that crashes is recorded with its exit code and faulthandler's traceback while the others still run; all
go into one JSON file (``$OUT/gpu_check.json`` under the device tool, else ``work_dirs/gpu_check/gpu_check.json``),
which ``--report`` turns into the README's GPU section:

* ``doctor``: ``mixbench doctor`` on CUDA (its lines and the op backend per device);
* ``detectors``: Faster R-CNN (VOC, 1000x600), RetinaNet and Mask R-CNN (COCO, 1333x800), R50-FPN, random init,
  2 images per GPU, synthetic data in the VOC/COCO layouts, 30 iterations each in fp32 and with ``--amp``: s/iter
  (median after 5 warm-up iterations; model step alone and with data loading), peak memory, and whether the loss
  fell (mean of the last 5 iterations below the first 5); the AMP speed-up per detector;
* ``pretrain_bench``: ``mixbench.pretrain.bench_mixing.run_bench`` with MoCo v2 R50 at 224 px, batch 256 (halved
  until it fits), AMP and channels_last: img/s of plain, G, R, G+R and the bare-network limit, the mixing overhead
  in % of a step and the plain/bare ratio.
"""


from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_setup import CARRY, DEVICE_PYTHON, ROOT, check_setup, check_versions, prepare, run_setup, setup_commands

DETECTORS = [  # (name, config, images per GPU); the configs' own scales are the paper's
    ("faster-rcnn", "configs/transfer/voc0712/faster-rcnn_r50_fpn_finetune-bn_1x_voc0712.py", 2),
    ("retinanet", "configs/transfer/coco/retinanet_r50_fpn_finetune-bn_1x_coco.py", 2),
    ("mask-rcnn", "configs/transfer/coco/mask-rcnn_r50_fpn_finetune-bn_1x_coco.py", 2),
]
ITERS, WARMUP_ITERS = 30, 5
BENCH = dict(arch="resnet50", img_size=224, batch_size=256, steps=5, warmup=3, rounds=3, K=16384)


# ----------------------------------------------------------------------------------------------- measurements
def measurement_plan() -> list[dict]:
    plan = [{"step": "doctor", "device": "cuda"}]
    for name, config, per_gpu in DETECTORS:
        for amp in (False, True):
            plan.append({"step": "detector", "name": name, "config": config, "amp": amp, "iters": ITERS,
                         "warmup_iters": WARMUP_ITERS, "images_per_gpu": per_gpu})
    plan.append({"step": "pretrain_bench", **BENCH, "amp": "bfloat16 if supported else float16",
                 "channels_last": True, "variants": ["plain", "global", "region", "global+region", "bare"]})
    return plan


def resolve_detector_configs(data_root: Path) -> list[dict]:
    """Load each detector config as the check will (random init, synthetic data root): scales, lr, batch."""
    from mixbench.transfer.checkpoint import Checkpoint
    from mixbench.transfer.config import build_config

    out = []
    for name, config, per_gpu in DETECTORS:
        cfg = build_config(ROOT / config, Checkpoint(name="random", path=None), Path(tempfile.gettempdir()) / name,
                           data_dir=data_root)
        out.append({"name": name, "config": config, "scale": _train_scale(cfg), "images_per_gpu": per_gpu,
                    "lr": _scaled_lr(cfg, per_gpu), "model": cfg.model.type})
    return out


def _train_scale(cfg) -> list[int]:
    train = cfg.train_dataloader.dataset
    while "dataset" in train or "datasets" in train:
        train = train["dataset"] if "dataset" in train else train["datasets"][0]
    return list(next(t["scale"] for t in train["pipeline"] if t["type"] == "Resize"))


def _scaled_lr(cfg, per_gpu: int) -> float:
    """The config's lr for its 16-image batch, scaled linearly to one GPU's batch (mmdet's auto_scale_lr rule)."""
    base = cfg.get("auto_scale_lr", {}).get("base_batch_size", 16)
    return float(cfg.optim_wrapper.optimizer.lr) * per_gpu / base


def run_detector(name: str, config: str, amp: bool, per_gpu: int, data_root: Path, iters: int = ITERS) -> dict:
    """``iters`` training iterations of one detector exactly as mmengine's loop runs them (``model.train_step``)."""
    import statistics

    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from mixbench.transfer import ops_backend
    from mixbench.transfer.checkpoint import Checkpoint
    from mixbench.transfer.config import build_config

    register_all_modules()
    cfg = build_config(ROOT / config, Checkpoint(name="random", path=None), Path(tempfile.gettempdir()) / name,
                       data_dir=data_root, amp=amp)
    ops_backend.configure()  # as `mixbench transfer` does: mmcv's CUDA kernels, or torchvision's without them
    ops_backend.check_config_ops(cfg.model)
    cfg.optim_wrapper.optimizer.lr = _scaled_lr(cfg, per_gpu)
    cfg.train_dataloader.batch_size = per_gpu
    cfg.train_dataloader.num_workers = 8
    cfg.train_dataloader.persistent_workers = True
    torch.backends.cudnn.benchmark = cfg.env_cfg.get("cudnn_benchmark", False)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model = model.cuda()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batches = iter(loader)
    torch.cuda.reset_peak_memory_stats()
    step_s, iter_s, losses = [], [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        try:
            data = next(batches)
        except StopIteration:
            batches = iter(loader)
            data = next(batches)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        log = model.train_step(data, optim)
        torch.cuda.synchronize()
        t2 = time.perf_counter()
        step_s.append(t2 - t1)
        iter_s.append(t2 - t0)
        losses.append(float(log["loss"]))
    timed = slice(WARMUP_ITERS, None)
    first, last = statistics.mean(losses[:5]), statistics.mean(losses[-5:])
    return {"name": name, "config": config, "amp": amp, "precision": cfg.mixbench_run["precision"],
            "iters": iters, "images_per_gpu": per_gpu, "scale": _train_scale(cfg),
            "s_per_iter_step": statistics.median(step_s[timed]),
            "s_per_iter_with_data": statistics.median(iter_s[timed]),
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30, "loss_first5": first, "loss_last5": last,
            "loss_fell": bool(last < first), "losses": losses}


def run_pretrain_bench() -> dict:
    import torch

    from mixbench.pretrain.bench_mixing import run_bench

    dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    batch = BENCH["batch_size"]
    while True:
        try:
            rows, mem = run_bench(**dict(BENCH, batch_size=batch), device="cuda", amp_dtype=dtype,
                                  channels_last=True, bare=True)
            break
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            if batch <= 16:
                raise
            batch //= 2
    by = {r["variant"]: r for r in rows}
    return {"arch": BENCH["arch"], "img_size": BENCH["img_size"], "batch_size": batch, "amp": dtype,
            "channels_last": True, "memory": mem, "rows": rows,
            "img_per_s": {k: r["img_per_s"] for k, r in by.items()},
            "mix_overhead_pct": {k: r["mix_cost_pct"] for k, r in by.items() if k not in ("plain", "bare")},
            "step_ratio_vs_plain": {k: r["ratio"] for k, r in by.items()},
            "plain_over_bare": by["plain"]["img_per_s"] / by["bare"]["img_per_s"]}


def measurement_steps() -> list[str]:
    """:func:`measurement_plan`'s steps by name, each run in a process of its own (``--measure-only --step STEP``)."""
    return [f"detector:{m['name']}:{int(m['amp'])}" if m["step"] == "detector" else m["step"]
            for m in measurement_plan()]


def measure_step(step: str, out: Path, data_root: Path) -> None:
    """One measurement, merged into ``out``; needs CUDA and mixbench importable."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no GPU visible (use --dry-run to check the plan on a CPU machine)")
    result = _load(out)
    result.update({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
                   "python": platform.python_version(), "cpu_count": os.cpu_count()})
    start = time.perf_counter()
    if step == "doctor":
        from mixbench.doctor import run_doctor
        from mixbench.transfer.ops_backend import backends

        lines: list[str] = []
        code = run_doctor(lines.append)
        result["doctor"] = {"exit_code": code, "lines": lines, "ops_backend": backends()}
    elif step.startswith("detector:"):
        _, name, amp = step.split(":")
        config, per_gpu = next((c, n) for d, c, n in DETECTORS if d == name)
        if not (data_root / "coco").is_dir():
            from mixbench.synthetic import generate

            generate(data_root, seed=0, preset="tiny")  # VOCdevkit/ and coco/ in the real layouts
        row = run_detector(name, config, bool(int(amp)), per_gpu, data_root)
        row["wall_s"] = round(time.perf_counter() - start, 1)
        result.setdefault("detectors", []).append(row)
    elif step == "pretrain_bench":
        result["pretrain_bench"] = run_pretrain_bench()
        result["pretrain_bench"]["wall_s"] = round(time.perf_counter() - start, 1)
    else:
        raise SystemExit(f"gpu_check: unknown step {step!r} (known: {', '.join(measurement_steps())})")
    _save(out, result)
    print(f"[gpu_check] {step}: done in {time.perf_counter() - start:.1f} s", flush=True)


def measure(out: Path, data_root: Path, env: dict[str, str], steps: list[str] | None = None) -> dict:
    """Every step in a child process: a step that crashes (a segfault in a compiled op, say) is recorded with its
    exit code, and its traceback (faulthandler) is in the log; the steps after it still run."""
    env = dict(env, PYTHONFAULTHANDLER="1")
    for step in steps or measurement_steps():
        print(f"[gpu_check] measure: {step}", flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, __file__, "--measure-only", "--step", step, "--out", str(out),
                               "--data-root", str(data_root)], env=env).returncode
        if code != 0:
            result = _load(out)
            result.setdefault("failed_steps", []).append(
                {"step": step, "exit_code": code, "wall_s": round(time.perf_counter() - start, 1)})
            _save(out, result)
            print(f"[gpu_check] {step}: FAILED with exit code {code}", flush=True)
    result = _load(out)
    speedups = {}
    for name, _, _ in DETECTORS:
        rows = {r["amp"]: r for r in result.get("detectors", []) if r["name"] == name}
        if len(rows) == 2 and all("s_per_iter_step" in r for r in rows.values()):
            speedups[name] = rows[False]["s_per_iter_step"] / rows[True]["s_per_iter_step"]
    result["amp_speedup"] = speedups
    result["targets"] = targets(result)
    for line in result["targets"]:
        print(f"[gpu_check] {line}")
    return _save(out, result)


def targets(result: dict) -> list[str]:
    """The speed targets next to the figures measured in this run (no verdict without a figure)."""
    lines = []
    for name, speedup in result.get("amp_speedup", {}).items():
        lines.append(f"{name}: AMP {speedup:.2f}x faster than fp32 per iteration (target >= 1.3x)")
    bench = result.get("pretrain_bench", {})
    if "img_per_s" in bench:
        plain = bench["img_per_s"]["plain"]
        lines.append(f"MoCo v2 R50 224 px step: {plain:.0f} img/s at batch {bench['batch_size']} ({bench['amp']}, "
                     f"channels_last) on {result['gpu']} (target >= 1500 on one H100)")
        lines.append(f"MoCo step / bare network limit: {bench['plain_over_bare']:.3f} (target >= 0.9)")
        for k, v in bench["mix_overhead_pct"].items():
            lines.append(f"mixing overhead {k}: {v:+.2f}% of a step (target <= 2%)")
    return lines


def report(measured: dict, doctor: dict | None = None) -> str:
    """The README's GPU section body, from a check's JSON (and a later doctor-only run's, if given)."""
    from tabulate import tabulate

    doc = (doctor or measured).get("doctor", {})
    cuda_line = next((line for line in doc.get("lines", []) if "on cuda" in line), "not run")
    out = [f"{measured['gpu']}, torch {measured['torch']} (CUDA {measured['cuda']}), Python {measured['python']}, "
           f"{measured['cpu_count']} CPU cores. `mixbench doctor`: "
           f"{'OK' if doc.get('exit_code') == 0 else 'FAILED'}; {cuda_line.removeprefix('ops check    ')}.", ""]
    rows = [[r["name"], "x".join(map(str, r["scale"])), r["precision"], f"{r['s_per_iter_step']:.3f}",
             f"{r['s_per_iter_with_data']:.3f}", f"{r['peak_mem_gib']:.1f}",
             f"{r['loss_first5']:.2f} -> {r['loss_last5']:.2f}"]
            for r in measured.get("detectors", []) if "s_per_iter_step" in r]
    out.append(tabulate(rows, ["detector (R50-FPN, 2 img)", "scale", "precision", "s/iter", "s/iter with data",
                               "peak GiB", "loss, first 5 -> last 5 its"], tablefmt="github"))
    bench = measured.get("pretrain_bench", {})
    if "img_per_s" in bench:
        overhead = {"plain": "reference", "bare": "encoder steps alone, no MoCo"}
        overhead |= {k: f"{v:+.1f}" for k, v in bench["mix_overhead_pct"].items()}
        out += ["", tabulate([[k, f"{v:.0f}", overhead[k]] for k, v in bench["img_per_s"].items()],
                             [f"MoCo v2 R50 {bench['img_size']} px, batch {bench['batch_size']}, {bench['amp']}, "
                              "channels_last", "img/s", "mixing, % of a step"], tablefmt="github",
                             disable_numparse=True)]
    out += ["", *(f"- {line}" for line in targets(measured))]
    return "\n".join(out)


def _load(out: Path) -> dict:
    return json.loads(out.read_text()) if out.is_file() else {}


def _save(out: Path, result: dict) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(out)  # atomic: a check stopped at its time limit still leaves the figures it had
    return result


# ----------------------------------------------------------------------------------------------- main
def dry_run(carry: Path, out: Path, data_root: Path, jobs: int) -> int:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a dry run touches nothing CUDA
    work = Path(tempfile.gettempdir()) / "mixbench_gpu_check"
    plan: dict = {"dry_run": True, "setup": check_setup(carry), "versions": check_versions(),
                  "setup_steps": setup_commands(carry, work / "site", work / "build", jobs),
                  "measurements": measurement_plan()}
    try:
        plan["detector_configs"] = resolve_detector_configs(data_root)
    except Exception as err:  # noqa: BLE001  (reported as a problem of the plan)
        plan["versions"]["problems"].append(f"detector configs do not resolve: {type(err).__name__}: {err}")
    import torch

    plan["cuda_initialized"] = torch.cuda.is_initialized()
    problems = plan["setup"]["problems"] + plan["versions"]["problems"]
    if sys.version_info[:2] != DEVICE_PYTHON:
        plan["note"] = (f"this is Python {platform.python_version()}; the device runs {DEVICE_PYTHON[0]}."
                        f"{DEVICE_PYTHON[1]}, which the carried wheels are checked against")
    plan["problems"] = problems
    _save(out, plan)
    for step in plan["setup_steps"]:
        print(f"[plan] set-up: {step['what']}")
    for m in plan["measurements"]:
        print(f"[plan] measure: {json.dumps(m)}")
    for p in problems:
        print(f"PROBLEM: {p}")
    print(f"[gpu_check] dry run: {'OK' if not problems else f'{len(problems)} problem(s)'}; plan in {out}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="plan every step and check the set-up; no CUDA")
    ap.add_argument("--prepare", action="store_true", help="download the carried wheels and mmcv source here")
    ap.add_argument("--report", nargs="+", type=Path, metavar="JSON",
                    help="print the README's GPU figures from a check's JSON (then an optional doctor-only JSON)")
    ap.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)  # one step, after set-up
    ap.add_argument("--step", default="doctor", help=argparse.SUPPRESS)
    ap.add_argument("--carry", type=Path, default=CARRY)
    default_out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "work_dirs" / "gpu_check"
    ap.add_argument("--out", type=Path, default=default_out / "gpu_check.json")
    ap.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "mixbench_gpu_check" / "data")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--steps", nargs="+", choices=measurement_steps(), metavar="STEP",
                    help=f"measure only these (default: all, in order: {' '.join(measurement_steps())})")
    args = ap.parse_args(argv)
    if args.prepare:
        return prepare(args.carry)
    if args.report:
        runs = [json.loads(p.read_text()) for p in args.report]
        print(report(runs[0], runs[1] if len(runs) > 1 else None))
        return 0
    if args.dry_run:
        return dry_run(args.carry, args.out, args.data_root, args.jobs)
    if args.measure_only:
        measure_step(args.step, args.out, args.data_root)
        return 0
    setup = check_setup(args.carry, tuple(sys.version_info[:2]))
    if setup["problems"]:
        print("\n".join(f"PROBLEM: {p}" for p in setup["problems"]))
        return 1
    work = Path(tempfile.gettempdir()) / "mixbench_gpu_check"
    shutil.rmtree(work / "build", ignore_errors=True)
    start = time.perf_counter()
    timings = run_setup(setup_commands(args.carry, work / "site", work / "build", args.jobs), work / "site")
    _save(args.out.with_name("gpu_check_setup.json"), {"setup": timings,
                                                       "setup_s": round(time.perf_counter() - start, 1)})
    args.out.unlink(missing_ok=True)
    result = measure(args.out, args.data_root, dict(os.environ, PYTHONPATH=str(work / "site"), PYTHONUNBUFFERED="1"),
                     args.steps)
    return 1 if result.get("failed_steps") else 0


if __name__ == "__main__":
    sys.exit(main())
