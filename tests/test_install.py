"""A non-editable install (the wheel pip builds from this repository) works on its own, away from the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_runs_doctor_and_pipeline_help(tmp_path: Path) -> None:
    target = tmp_path / "site"
    # --no-deps: the stack is this interpreter's; --no-build-isolation: build with its setuptools (no download).
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, text=True, timeout=300)
    assert not list(target.glob("__editable__*")), "pip made an editable install"
    env = dict(os.environ, PYTHONPATH=str(target))  # ahead of any editable install of the working tree
    where = tmp_path / "elsewhere"
    where.mkdir()

    def run(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], cwd=where, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    out = run("import mixbench, mixbench.pretrain, mixbench.convert, mixbench.transfer, mixbench.configs\n"
              "from mixbench.base.config import CONFIG_ROOT\n"
              "for m in (mixbench, mixbench.pretrain, mixbench.convert, mixbench.transfer): print(m.__file__)\n"
              "print(CONFIG_ROOT)")
    paths = [Path(line) for line in out.split()]
    assert all(target in p.parents for p in paths), paths  # every package and the configs from the wheel
    assert (paths[-1] / "pipeline" / "demo_synthetic.py").is_file()
    assert (paths[-1] / "transfer" / "demo" / "_base_" / "cpu_demo.py").is_file()
    out = run("import sys; from mixbench.cli import main; sys.exit(main(['doctor']))")
    assert "mmcv" in out
    out = run("import sys; from mixbench.cli import main\ntry:\n main(['pipeline', '--help'])\n"
              "except SystemExit as e:\n sys.exit(e.code)")
    assert "usage: mixbench pipeline" in out and "Without CONFIG: the CPU demo" in out
    # the shipped demo pipeline config loads and its configs resolve inside the wheel
    out = run("from mixbench.pipeline import load_pipeline_config\ncfg = load_pipeline_config(None)\n"
              "print(cfg['_path']); print(cfg['pretrain'][0]['config'])")
    assert all(target in Path(p).parents for p in out.split())
