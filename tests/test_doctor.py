"""``mixbench doctor`` on this machine: the installed stack must pass, and a broken stack must fail loudly.

The versions it checks, like every pin, come from mixbench/constraints.txt; the package version from
``mixbench.__version__``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import mixbench
import mixbench.doctor as doctor

ROOT = Path(__file__).resolve().parents[1]


def _pins_by_regex(text: str) -> dict[str, str]:
    """A second reading of a constraints file, independent of the one under test."""
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", text, re.M)}


def test_doctor_passes_on_the_installed_stack() -> None:
    lines: list[str] = []
    assert doctor.run_doctor(lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "mmcv ops     compiled" in text and "nms + RoIAlign on cpu: match torchvision" in text
    assert lines[0] == f"mixbench     {mixbench.__version__}"
    from mixbench.transfer.ops_backend import backends

    for op, row in backends().items():  # one line per op with its backend on each device
        assert any(line.startswith(f"op backend   {op}") and f"cpu: {row['cpu']}" in line
                   and f"cuda: {row['cuda']}" in line for line in lines), (op, text)


def test_doctor_stays_off_mmcv_get_compiler_version(monkeypatch) -> None:
    """That call segfaulted on the lent H200 machine (mmcv built against torch 2.11): the doctor must not make it."""
    import mmcv.ops

    def crash() -> str:
        raise AssertionError("mmcv.ops.get_compiler_version called")

    monkeypatch.setattr(mmcv.ops, "get_compiler_version", crash)
    lines: list[str] = []
    assert doctor.run_doctor(lines.append) == 0, "\n".join(lines)


def test_doctor_gpu_check_through_the_stand_ins() -> None:
    """The CUDA check (nms, RoIAlign and focal loss against torchvision), forced through the stand-ins on CPU."""
    from mixbench.transfer.ops_backend import force_torchvision

    with force_torchvision():
        doctor._check_ops("cpu", focal=True)


def test_doctor_fails_with_a_fix_when_versions_are_wrong() -> None:
    lines: list[str] = []
    required = dict(doctor.required_versions(), mmdet="==0.0.0")
    assert doctor.run_doctor(lines.append, required) == 1
    assert any(line.startswith("PROBLEM: mmdet ==0.0.0 is required, found ") for line in lines)
    assert lines[-1] == doctor.FIX


def test_doctor_requires_the_pins_of_constraints_txt(tmp_path: Path) -> None:
    pins = _pins_by_regex((ROOT / "mixbench" / "constraints.txt").read_text())
    assert doctor.required_versions() == {name: f"=={pins[name]}" for name in doctor.STACK}
    other = tmp_path / "constraints.txt"
    other.write_text("# another stack\nmmcv==9.1.0\nmmdet==9.2.0  # trailing note\nmmengine==9.3.0\ntqdm==1.0\n")
    assert doctor.required_versions(other) == {"mmcv": "==9.1.0", "mmdet": "==9.2.0", "mmengine": "==9.3.0"}


def test_pyproject_states_ranges_and_the_version_once() -> None:
    """mixbench/constraints.txt holds the pins and ``mixbench.__version__`` the version: pyproject restates neither,
    and the wheel ships the pins for an installed ``mixbench doctor``."""
    from packaging.requirements import Requirement
    from setuptools.config.pyprojecttoml import read_configuration

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert read_configuration(ROOT / "pyproject.toml")["project"]["version"] == mixbench.__version__
    pinned = [r for r in map(Requirement, project["dependencies"]) if any(s.operator == "==" for s in r.specifier)]
    assert pinned == []
    assert "constraints.txt" in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["mixbench"]
