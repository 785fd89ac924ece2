#!/usr/bin/env python3
"""The device check (issue 9): set up mixbench on a bare one-GPU machine from carried wheels, then measure.

    python tools/gpu_check.py --prepare              # here, with the package index: fill .gpu_carry/ (~7 MiB)
    bash tools/gpu_check.sh --dry-run                # anywhere: plan every step, check the set-up, no CUDA
    bash tools/gpu_check.sh                          # on the GPU machine (device tool: carry ['.gpu_carry'])

The lent machines have no network, Python 3.12 with their own torch (2.11, CUDA 13.0), torchvision 0.26 and nvcc,
and no mmcv/mmengine/mmdet/pycocotools. So the check runs on the image's torch and brings, in ``.gpu_carry/``
(ignored by git, named in the device tool's ``carry``), cp312 wheels of what the image lacks and mmcv 2.1.0's
source. Set-up (stdlib only, before anything of mixbench is imported):

1. ``pip install --no-index --no-deps --target SITE .gpu_carry/wheels/*.whl`` (setuptools < 82 among them:
   mmengine's ``mmdet::`` configs and mmcv's setup.py import ``pkg_resources``);
2. build mmcv 2.1.0 with its CPU ops from the carried source (C++20 patch as in .ci/bootstrap.sh), 16 jobs, the GPU
   hidden from its setup.py (which would otherwise compile CUDA kernels); CUDA tensors of its ops then go to
   torchvision (``mixbench.transfer.ops_backend``), which is part of what this check measures;
3. ``pip install --no-deps --no-build-isolation --target SITE .`` (mixbench itself);

then this script re-runs itself with ``PYTHONPATH=SITE`` for the measurements, written to one JSON file
(``$OUT/gpu_check.json`` under the device tool, else ``work_dirs/gpu_check/gpu_check.json``):

* ``doctor``: ``mixbench doctor`` on CUDA (its lines and the op backend per device);
* ``detectors``: Faster R-CNN (VOC, 1000x600), RetinaNet and Mask R-CNN (COCO, 1333x800), R50-FPN, random init,
  2 images per GPU, synthetic data in the VOC/COCO layouts, 30 iterations each in fp32 and with ``--amp``: s/iter
  (median after 5 warm-up iterations; model step alone and with data loading), peak memory, and whether the loss
  fell (mean of the last 5 iterations below the first 5); the AMP speed-up per detector;
* ``pretrain_bench``: ``mixbench.pretrain.bench.run_bench`` with MoCo v2 R50 at 224 px, batch 256 (halved until it
  fits), AMP and channels_last: img/s of plain, G, R, G+R and the bare-network limit, the mixing overhead in % of a
  step and the plain/bare ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".gpu_carry"
CARRY_LIMIT_MIB = 64  # the device tool's limit for the whole travelling tree, carried folders included
DEVICE_PYTHON = (3, 12)
# what the lent image lacks (KINDS.md), at the versions constraints.txt pins; all pure Python or cp312 wheels
WHEELS = {"mmengine": "0.10.7", "mmdet": "3.3.0", "pycocotools": "2.0.11", "shapely": "2.2.0",
          "terminaltables": "3.1.10", "addict": "2.4.0", "yapf": "0.43.0", "platformdirs": "4.14.8",
          "termcolor": "3.3.0", "setuptools": "81.0.0"}
MMCV_SDIST = "mmcv-2.1.0.tar.gz"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
DETECTORS = [  # (name, config, images per GPU); the configs' own scales are the paper's
    ("faster-rcnn", "configs/transfer/voc0712/faster-rcnn_r50_fpn_finetune-bn_1x_voc0712.py", 2),
    ("retinanet", "configs/transfer/coco/retinanet_r50_fpn_finetune-bn_1x_coco.py", 2),
    ("mask-rcnn", "configs/transfer/coco/mask-rcnn_r50_fpn_finetune-bn_1x_coco.py", 2),
]
ITERS, WARMUP_ITERS = 30, 5
BENCH = dict(arch="resnet50", img_size=224, batch_size=256, steps=5, warmup=3, rounds=3, K=16384)


# ----------------------------------------------------------------------------------------------- set-up (stdlib)
def _wheel_tags(name: str) -> tuple[str, str, str, str]:
    """``pkg-1.0-cp312-cp312-manylinux_x.whl`` -> (distribution, version, python tag, abi tag)."""
    parts = name[: -len(".whl")].split("-")
    return parts[0].lower().replace("_", "-"), parts[1], parts[-3], parts[-2]


def _fits_python(py_tag: str, abi_tag: str, py: tuple[int, int]) -> bool:
    tags = py_tag.split(".")
    want = f"cp{py[0]}{py[1]}"
    if abi_tag == "abi3":  # stable ABI: any CPython at or above the tag
        return any(t.startswith("cp") and int(t[3:] or 0) <= py[1] for t in tags)
    return want in tags or any(t in ("py3", f"py{py[0]}{py[1]}") for t in tags)


def check_setup(carry: Path, device_python: tuple[int, int] = DEVICE_PYTHON) -> dict:
    """Is the carried folder complete for the device's Python? Returns facts and a list of problems (no CUDA)."""
    problems: list[str] = []
    wheels_dir = carry / "wheels"
    found = {}
    for w in sorted(wheels_dir.glob("*.whl")) if wheels_dir.is_dir() else []:
        dist, version, py_tag, abi_tag = _wheel_tags(w.name)
        if dist in found:
            problems.append(f"{wheels_dir}: two wheels of {dist} ({found[dist]['file']}, {w.name}); keep one")
        found[dist] = {"file": w.name, "version": version, "fits_python": _fits_python(py_tag, abi_tag, device_python)}
    for dist, version in WHEELS.items():
        have = found.get(dist)
        if have is None:
            problems.append(f"{wheels_dir}: no wheel of {dist}=={version} (run `python tools/gpu_check.py --prepare`)")
        elif have["version"] != version:
            problems.append(f"{wheels_dir}/{have['file']}: {dist} {have['version']}, want {version}")
        elif not have["fits_python"]:
            py = ".".join(map(str, device_python))
            problems.append(f"{wheels_dir}/{have['file']}: not installable on Python {py} (download it with "
                            f"--python-version {py})")
    sdist = carry / MMCV_SDIST
    if not sdist.is_file():
        problems.append(f"{sdist}: mmcv's source is missing (run `python tools/gpu_check.py --prepare`)")
    else:
        try:
            with tarfile.open(sdist) as tar:
                if "mmcv-2.1.0/setup.py" not in tar.getnames():
                    problems.append(f"{sdist}: no mmcv-2.1.0/setup.py inside; not mmcv 2.1.0's source")
        except (tarfile.TarError, OSError) as err:
            problems.append(f"{sdist}: unreadable ({err})")
    size = sum(f.stat().st_size for f in carry.rglob("*") if f.is_file()) if carry.is_dir() else 0
    if size > CARRY_LIMIT_MIB * 2**20 * 0.75:  # the rest of the tree travels too
        problems.append(f"{carry}: {size / 2**20:.1f} MiB, too close to the device tool's {CARRY_LIMIT_MIB} MiB")
    return {"carry": str(carry), "carry_mib": round(size / 2**20, 2), "wheels": found, "mmcv_sdist": sdist.is_file(),
            "device_python": ".".join(map(str, device_python)), "problems": problems}


def check_versions() -> dict:
    """Python and torch/torchvision of the interpreter running this, against pyproject.toml's supported ranges."""
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    facts: dict = {"python": platform.python_version(), "requires_python": project["requires-python"],
                   "problems": []}
    ranges = {r.name: r.specifier for r in map(Requirement, project["dependencies"])}
    if not Requirement(f"python{project['requires-python']}").specifier.contains(facts["python"]):
        facts["problems"].append(f"Python {facts['python']} is outside mixbench's {project['requires-python']}")
    for name in ("torch", "torchvision"):
        try:
            have = version(name).split("+")[0]
        except PackageNotFoundError:
            facts["problems"].append(f"{name} is not installed")
            continue
        facts[name] = {"installed": have, "supported": str(ranges[name])}
        if not ranges[name].contains(have):
            facts["problems"].append(f"{name} {have} is outside mixbench's supported {ranges[name]} (pyproject.toml)")
    return facts


def setup_commands(carry: Path, site: Path, build: Path, jobs: int) -> list[dict]:
    """The exact set-up commands, in order (the dry run prints them; the real run executes them)."""
    py = sys.executable
    pip = [py, "-m", "pip", "--disable-pip-version-check", "-q"]
    src = build / "mmcv-2.1.0"
    hide_gpu = {"CUDA_VISIBLE_DEVICES": "", "MMCV_WITH_OPS": "1", "FORCE_CUDA": "0", "MAX_JOBS": str(jobs)}
    return [
        {"what": "install the carried wheels (no index, no dependencies resolved)",
         "cmd": [*pip, "install", "--no-index", "--no-deps", "--no-compile", "--upgrade", "--target", str(site),
                 *sorted(str(w) for w in (carry / "wheels").glob("*.whl"))]},
        {"what": "unpack mmcv 2.1.0's source", "unpack": [str(carry / MMCV_SDIST), str(build)]},
        {"what": "C++20 instead of C++14/17 in mmcv's setup.py (torch >= 2.10 headers need it)",
         "patch": str(src / "setup.py")},
        {"what": f"build mmcv's CPU ops ({jobs} jobs; the GPU hidden so setup.py compiles no CUDA kernels)",
         "cmd": [*pip, "wheel", "--no-index", "--no-deps", "--no-build-isolation", "-w", str(build / "dist"),
                 str(src)], "env": hide_gpu},
        {"what": "install the mmcv wheel", "cmd": [*pip, "install", "--no-index", "--no-deps", "--target", str(site),
                                                  str(build / "dist" / "mmcv-2.1.0-*.whl")]},
        {"what": "install mixbench (not editable: its folders map onto one namespace)",
         "cmd": [*pip, "install", "--no-index", "--no-deps", "--no-build-isolation", "--target", str(site),
                 str(ROOT)]},
    ]


def run_setup(steps: list[dict], site: Path) -> list[dict]:
    """Execute :func:`setup_commands`; returns the time each took. Raises on the first failure."""
    env = dict(os.environ, PYTHONPATH=str(site))  # the carried setuptools (pkg_resources) for mmcv's setup.py
    done = []
    for step in steps:
        start = time.perf_counter()
        if "unpack" in step:
            with tarfile.open(step["unpack"][0]) as tar:
                tar.extractall(step["unpack"][1], filter="data")
        elif "patch" in step:
            p = Path(step["patch"])
            text = re.sub(r"-std=c\+\+1[47]", "-std=c++20", p.read_text())
            if "-std=c++20" not in text:
                raise RuntimeError(f"{p}: could not patch the C++ standard")
            p.write_text(text)
        else:
            cmd = [str(next(Path(c).parent.glob(Path(c).name), c)) if "*" in c else c for c in step["cmd"]]
            print(f"[gpu_check] {step['what']}", flush=True)
            subprocess.run(cmd, env=dict(env, **step.get("env", {})), check=True)
        done.append({"what": step["what"], "seconds": round(time.perf_counter() - start, 1)})
    return done


def prepare(carry: Path) -> int:
    """Here, with the package index: download the cp312 wheels and mmcv's source into ``carry``."""
    (carry / "wheels").mkdir(parents=True, exist_ok=True)
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    py = ".".join(map(str, DEVICE_PYTHON))
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
    subprocess.run([*pip, "--only-binary=:all:", "--python-version", py, "--implementation", "cp", *plat, "-d",
                    str(carry / "wheels"), *(f"{k}=={v}" for k, v in WHEELS.items())], check=True)
    subprocess.run([*pip, "--no-binary", ":all:", "--no-build-isolation", "mmcv==2.1.0", "-d", str(carry)], check=True)
    facts = check_setup(carry)
    print(json.dumps(facts, indent=1))
    return 1 if facts["problems"] else 0


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
    from mixbench.transfer.runner import Checkpoint, build_config

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
    from mixbench.transfer.runner import Checkpoint, build_config

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

    from mixbench.pretrain.bench import run_bench

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


def measure(out: Path, data_root: Path) -> dict:
    """Everything after set-up; needs CUDA and mixbench importable."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no GPU visible (use --dry-run to check the plan on a CPU machine)")
    from mixbench.doctor import run_doctor
    from mixbench.synthetic import generate
    from mixbench.transfer.ops_backend import backends

    result: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
                    "python": platform.python_version(), "cpu_count": os.cpu_count()}
    lines: list[str] = []
    result["doctor"] = {"exit_code": run_doctor(lines.append), "lines": lines, "ops_backend": backends()}
    _save(out, result)
    generate(data_root, seed=0, preset="tiny")  # VOCdevkit/ and coco/ in the real layouts
    result["detectors"] = []
    for name, config, per_gpu in DETECTORS:
        for amp in (False, True):
            start = time.perf_counter()
            try:
                row = run_detector(name, config, amp, per_gpu, data_root)
            except Exception as err:  # noqa: BLE001  (one failing detector must not hide the other figures)
                row = {"name": name, "amp": amp, "error": f"{type(err).__name__}: {err}"}
            row["wall_s"] = round(time.perf_counter() - start, 1)
            result["detectors"].append(row)
            _save(out, result)
            torch.cuda.empty_cache()
    speedups = {}
    for name, _, _ in DETECTORS:
        rows = {r["amp"]: r for r in result["detectors"] if r["name"] == name}
        if len(rows) == 2 and all("s_per_iter_step" in r for r in rows.values()):
            speedups[name] = rows[False]["s_per_iter_step"] / rows[True]["s_per_iter_step"]
    result["amp_speedup"] = speedups
    start = time.perf_counter()
    try:
        result["pretrain_bench"] = run_pretrain_bench()
    except Exception as err:  # noqa: BLE001
        result["pretrain_bench"] = {"error": f"{type(err).__name__}: {err}"}
    result["pretrain_bench"]["wall_s"] = round(time.perf_counter() - start, 1)
    result["targets"] = targets(result)
    for line in result["targets"]:
        print(f"[gpu_check] {line}")
    return _save(out, result)


def targets(result: dict) -> list[str]:
    """The issue's speed targets next to the figures measured in this run (no verdict without a figure)."""
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
    ap.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)  # the re-run after set-up
    ap.add_argument("--carry", type=Path, default=CARRY)
    default_out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "work_dirs" / "gpu_check"
    ap.add_argument("--out", type=Path, default=default_out / "gpu_check.json")
    ap.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "mixbench_gpu_check" / "data")
    ap.add_argument("--jobs", type=int, default=16)
    args = ap.parse_args(argv)
    if args.prepare:
        return prepare(args.carry)
    if args.dry_run:
        return dry_run(args.carry, args.out, args.data_root, args.jobs)
    if args.measure_only:
        measure(args.out, args.data_root)
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
    env = dict(os.environ, PYTHONPATH=str(work / "site"), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, __file__, "--measure-only", "--out", str(args.out), "--data-root",
                           str(args.data_root)], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
