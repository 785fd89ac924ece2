"""``mixbench doctor`` on this machine: the installed stack must pass, and a broken stack must fail loudly."""

from __future__ import annotations

import mixbench.doctor as doctor


def test_doctor_passes_on_the_installed_stack() -> None:
    lines: list[str] = []
    assert doctor.run_doctor(lines.append) == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "mmcv ops     compiled" in text and "nms + RoIAlign on cpu: match torchvision" in text
    from mixbench.transfer.ops_backend import backends

    for op, row in backends().items():  # one line per op with its backend on each device
        assert any(line.startswith(f"op backend   {op}") and f"cpu: {row['cpu']}" in line
                   and f"cuda: {row['cuda']}" in line for line in lines), (op, text)


def test_doctor_gpu_check_through_the_stand_ins() -> None:
    """The CUDA check (nms, RoIAlign and focal loss against torchvision), forced through the stand-ins on CPU."""
    from mixbench.transfer.ops_backend import force_torchvision

    with force_torchvision():
        doctor._check_ops("cpu", focal=True)


def test_doctor_fails_with_a_fix_when_versions_are_wrong(monkeypatch) -> None:
    monkeypatch.setitem(doctor.REQUIRED, "mmdet", "0.0.0-not-installed")
    lines: list[str] = []
    assert doctor.run_doctor(lines.append) == 1
    assert any(line.startswith("PROBLEM: mmdet 0.0.0-not-installed is required") for line in lines)
    assert lines[-1] == doctor.FIX
