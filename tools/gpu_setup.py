"""The device check's set-up: what it carries to the bare GPU machine, and how it installs it there.

The set-up steps use the standard library only: they run on the lent machine's interpreter before anything of
mixbench is installed (``tools/gpu_check.py`` is the entry point and says what the carried folder holds and why).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".gpu_carry"
CARRY_LIMIT_MIB = 64  # the device tool's limit for the whole travelling tree, carried folders included
DEVICE_PYTHON = (3, 12)


def read_pins(path: Path = ROOT / "mixbench" / "constraints.txt") -> dict[str, str]:
    """The ``name==version`` lines of the pinned stack: {lower-case name: version}.

    Hand-parsed: the set-up runs on a bare interpreter, before ``packaging`` or mixbench can be assumed.
    """
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].partition("==")
        if sep:
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


PINS = read_pins()
# what the lent image lacks, at their pinned versions; all pure Python or cp312 wheels
WHEELS = {name: PINS[name] for name in ("mmengine", "mmdet", "pycocotools", "shapely", "terminaltables", "addict",
                                        "yapf", "platformdirs", "termcolor", "setuptools")}
MMCV = f"mmcv-{PINS['mmcv']}"  # mmcv's source folder, and its archive's name without .tar.gz
MMCV_SDIST = f"{MMCV}.tar.gz"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


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
                if f"{MMCV}/setup.py" not in tar.getnames():
                    problems.append(f"{sdist}: no {MMCV}/setup.py inside; not {MMCV}'s source")
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
    src = build / MMCV
    hide_gpu = {"CUDA_VISIBLE_DEVICES": "", "MMCV_WITH_OPS": "1", "FORCE_CUDA": "0", "MAX_JOBS": str(jobs)}
    return [
        {"what": "install the carried wheels (no index, no dependencies resolved)",
         "cmd": [*pip, "install", "--no-index", "--no-deps", "--no-compile", "--upgrade", "--target", str(site),
                 *sorted(str(w) for w in (carry / "wheels").glob("*.whl"))]},
        {"what": f"unpack {MMCV}'s source", "unpack": [str(carry / MMCV_SDIST), str(build)]},
        {"what": "C++20 instead of C++14/17 in mmcv's setup.py (torch >= 2.10 headers need it)",
         "patch": str(src / "setup.py")},
        {"what": f"build mmcv's CPU ops ({jobs} jobs; the GPU hidden so setup.py compiles no CUDA kernels)",
         "cmd": [*pip, "wheel", "--no-index", "--no-deps", "--no-build-isolation", "-w", str(build / "dist"),
                 str(src)], "env": hide_gpu},
        {"what": "install the mmcv wheel", "cmd": [*pip, "install", "--no-index", "--no-deps", "--target", str(site),
                                                  str(build / "dist" / f"{MMCV}-*.whl")]},
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
    subprocess.run([*pip, "--no-binary", ":all:", "--no-build-isolation", f"mmcv=={PINS['mmcv']}", "-d", str(carry)],
                   check=True)
    facts = check_setup(carry)
    print(json.dumps(facts, indent=1))
    return 1 if facts["problems"] else 0
