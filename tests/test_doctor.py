"""``mixbench doctor`` on this machine: the installed stack must pass, and a broken stack must fail loudly."""

from __future__ import annotations

import mixbench.doctor as doctor


def test_doctor_passes_on_the_installed_stack() -> None:
    lines: list[str] = []
    assert doctor.run_doctor(lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "mmcv ops     compiled" in text and "nms + RoIAlign on cpu: match torchvision" in text


def test_doctor_fails_with_a_fix_when_versions_are_wrong(monkeypatch) -> None:
    monkeypatch.setitem(doctor.REQUIRED, "mmdet", "0.0.0-not-installed")
    lines: list[str] = []
    assert doctor.run_doctor(lines.append) == 1
    assert any(line.startswith("PROBLEM: mmdet 0.0.0-not-installed is required") for line in lines)
    assert lines[-1] == doctor.FIX
