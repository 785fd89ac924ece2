"""The device check's dry run (tools/gpu_check.sh --dry-run): every step planned, set-up checked, nothing on CUDA.

The carried folder is ignored by git, so the test builds a stand-in with the same file names (the dry run reads
names, versions and tags of the wheels and the inside of mmcv's source archive, never their contents).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gpu_check  # noqa: E402
import gpu_setup  # noqa: E402

WHEEL_NAMES = {
    "pycocotools": "pycocotools-2.0.11-cp312-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    "shapely": "shapely-2.2.0-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
}


def _carry(tmp_path: Path, skip: str | None = None, override: dict[str, str] | None = None) -> Path:
    carry = tmp_path / "carry"
    (carry / "wheels").mkdir(parents=True)
    for dist, version in gpu_setup.WHEELS.items():
        if dist == skip:
            continue
        name = {**WHEEL_NAMES, **(override or {})}.get(dist, f"{dist}-{version}-py3-none-any.whl")
        (carry / "wheels" / name).write_bytes(b"PK")
    with tarfile.open(carry / gpu_setup.MMCV_SDIST, "w:gz") as tar:
        info = tarfile.TarInfo(f"{gpu_setup.MMCV}/setup.py")
        body = b"extra_compile_args = ['-std=c++14']\n"
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return carry


def _dry_run(carry: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env.pop("OUT", None)
    return subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), "--dry-run", "--carry", str(carry), "--out",
                           str(out), "--data-root", str(out.parent / "data")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_dry_run_plans_every_step_and_touches_no_cuda(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    done = _dry_run(_carry(tmp_path), out)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    plan = json.loads(out.read_text())
    assert plan["dry_run"] and plan["problems"] == [] and plan["cuda_initialized"] is False
    # set-up: carried wheels, mmcv source unpacked + patched, CPU-ops build with the GPU hidden, mixbench
    steps = plan["setup_steps"]
    assert len(steps) == 6 and len(steps[0]["cmd"]) > len(gpu_setup.WHEELS)
    build = next(s for s in steps if "build mmcv" in s["what"])
    assert build["env"] == {"CUDA_VISIBLE_DEVICES": "", "MMCV_WITH_OPS": "1", "FORCE_CUDA": "0", "MAX_JOBS": "16"}
    assert all("--no-index" in s["cmd"] for s in steps if "cmd" in s)  # nothing from the network there
    # measurements: doctor, 3 detectors x (fp32, amp) x 30 iterations, the pretraining bench
    ms = plan["measurements"]
    dets = [m for m in ms if m["step"] == "detector"]
    assert [m["step"] for m in ms].count("doctor") == 1 and len(dets) == 6
    assert {(m["name"], m["amp"]) for m in dets} == {(n, a) for n, _, _ in gpu_check.DETECTORS for a in (0, 1)}
    assert all(m["iters"] == 30 and m["images_per_gpu"] == 2 for m in dets)
    bench = next(m for m in ms if m["step"] == "pretrain_bench")
    assert bench["arch"] == "resnet50" and bench["img_size"] == 224 and bench["batch_size"] == 256
    assert bench["channels_last"] and "bare" in bench["variants"]
    # the configs resolve as the check will use them, at the paper's scales, lr scaled from 16 to 2 images
    scales = {c["name"]: c["scale"] for c in plan["detector_configs"]}
    assert scales == {"faster-rcnn": [1000, 600], "retinanet": [1333, 800], "mask-rcnn": [1333, 800]}
    lrs = {c["name"]: c["lr"] for c in plan["detector_configs"]}
    assert lrs == pytest.approx({"faster-rcnn": 0.01 * 2 / 16, "retinanet": 0.02 * 2 / 16, "mask-rcnn": 0.02 * 2 / 16})
    assert plan["versions"]["torch"]["supported"] and plan["setup"]["device_python"] == "3.12"
    assert "[gpu_check] dry run: OK" in done.stdout


def test_dry_run_names_a_missing_or_wrong_wheel(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    carry = _carry(tmp_path, skip="mmdet", override={"shapely": "shapely-2.2.0-cp311-cp311-manylinux_2_28_x86_64.whl"})
    done = _dry_run(carry, out)
    assert done.returncode == 1
    assert "PROBLEM: " in done.stdout and "--prepare" in done.stdout
    assert f"no wheel of mmdet=={gpu_setup.WHEELS['mmdet']}" in done.stdout
    assert "shapely-2.2.0-cp311-cp311-manylinux_2_28_x86_64.whl: not installable on Python 3.12" in done.stdout


def test_wheel_tag_rules() -> None:
    assert gpu_setup._fits_python("cp312", "abi3", (3, 12)) and gpu_setup._fits_python("cp38", "abi3", (3, 12))
    assert not gpu_setup._fits_python("cp313", "abi3", (3, 12))
    assert gpu_setup._fits_python("py2.py3", "none", (3, 12)) and not gpu_setup._fits_python("cp311", "cp311", (3, 12))


def test_targets_lines_come_from_measured_figures() -> None:
    fake = {"gpu": "GPU X", "amp_speedup": {"mask-rcnn": 1.5},
            "pretrain_bench": {"img_per_s": {"plain": 1600.0}, "batch_size": 256, "amp": "bfloat16",
                               "plain_over_bare": 0.93, "mix_overhead_pct": {"global+region": 1.2}}}
    lines = gpu_check.targets(fake)
    assert lines[0] == "mask-rcnn: AMP 1.50x faster than fp32 per iteration (target >= 1.3x)"
    assert "1600 img/s at batch 256 (bfloat16, channels_last) on GPU X" in lines[1]
    assert "0.930" in lines[2] and "+1.20%" in lines[3]
    assert gpu_check.targets({"pretrain_bench": {"error": "OOM"}}) == []


# ----------------------------------------------------------------------------------------------- pins
def _pins_by_regex(text: str) -> dict[str, str]:
    """A second reading of a constraints file, independent of the ones under test."""
    return {m[1].lower().replace("_", "-"): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", text, re.M)}


def test_carried_versions_are_the_pins_of_constraints_txt(tmp_path: Path) -> None:
    pins = _pins_by_regex((ROOT / "mixbench" / "constraints.txt").read_text())
    assert gpu_setup.WHEELS == {name: pins[name] for name in gpu_setup.WHEELS}
    assert gpu_setup.MMCV_SDIST == f"mmcv-{pins['mmcv']}.tar.gz"
    other = tmp_path / "constraints.txt"
    other.write_text("# note\nmmcv==9.1.0\nPyYAML==6.0  # trailing note\ntyping_extensions==4.0\n")
    assert gpu_setup.read_pins(other) == {"mmcv": "9.1.0", "pyyaml": "6.0", "typing-extensions": "4.0"}


def test_bootstrap_builds_the_mmcv_of_constraints_txt(tmp_path: Path) -> None:
    lines = [x for x in (ROOT / ".ci" / "bootstrap.sh").read_text().splitlines()
             if x.startswith(("CONSTRAINTS=", "MMCV_VERSION="))]
    (tmp_path / "mixbench").mkdir()
    (tmp_path / "mixbench" / "constraints.txt").write_text("mmdet==3.3.0\nmmcv==9.1.0  # note\nmmcv-lite==1.0\n")
    script = "\n".join([f"ROOT={tmp_path}", *lines, 'printf %s "$MMCV_VERSION"'])
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout == "9.1.0"


def test_no_tool_restates_a_pin() -> None:
    """The set-up and check tools read their versions from constraints.txt; none writes one down again."""
    pins = _pins_by_regex((ROOT / "mixbench" / "constraints.txt").read_text())
    names = ["mmcv", "mmdet", "mmengine", *gpu_setup.WHEELS]
    tools = ["mixbench/doctor.py", "tools/gpu_setup.py", "tools/gpu_check.py", "tools/gpu_check.sh", ".ci/bootstrap.sh"]
    for tool in tools:
        text = (ROOT / tool).read_text()
        assert [n for n in names if re.search(rf"(?<![\d.]){re.escape(pins[n])}(?![\d.])", text)] == [], tool
