"""The Slurm tests run against a real cluster (``bash tools/slurm_local.sh start``; ``make test-slurm`` starts it).

They run only when selected by marker (``pytest -m slurm tests/slurm``): a plain ``pytest`` run needs no root and no
cluster, so this hook leaves them out unless the ``-m`` expression names ``slurm``.
"""

from __future__ import annotations

import os
import subprocess

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slurm" in (config.option.markexpr or ""):
        return
    skipped = [i for i in items if i.get_closest_marker("slurm") is not None]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [i for i in items if i.get_closest_marker("slurm") is None]


@pytest.fixture(scope="session", autouse=True)
def slurm_cluster() -> int:
    """The running cluster's CPUs per node; fails (never skips) naming how to start one."""
    folder = os.environ.get("MIXBENCH_SLURM_DIR", "/tmp/mixbench-slurm")
    os.environ.setdefault("SLURM_CONF", f"{folder}/slurm.conf")
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
        cpus = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.fail(f"no Slurm cluster ({err}); start one with `bash tools/slurm_local.sh start`")
    if ping.returncode != 0 or "UP" not in ping.stdout or not cpus.stdout.strip().isdigit():
        pytest.fail(f"no Slurm cluster at SLURM_CONF={os.environ['SLURM_CONF']} ({ping.stdout.strip()} "
                    f"{ping.stderr.strip()}); start one with `bash tools/slurm_local.sh start`")
    return int(cpus.stdout.strip())
