"""What the Slurm executor asks of a cluster, read from the sbatch script submitit writes for it: the multi-node
and GPU settings, which the one-node test cluster cannot run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from submitit.slurm.slurm import _make_sbatch_string

from mixbench.executors.slurm import MixbenchCommand, SlurmExecutor
from mixbench.jobs import Job

RESOURCES = {"nodes": 2, "tasks_per_node": 8, "gpus_per_task": 1, "cpus_per_task": 10, "mem_gb": 480,
             "timeout_min": 720, "partition": "gpu", "account": "ssl", "qos": "high", "constraint": "a100",
             "sbatch": {"exclusive": True}, "signal_delay_s": 300}


def test_the_sbatch_script_states_every_resource_and_the_job_environment(tmp_path):
    job = Job("transfer voc", ["transfer", "random", "--config", "c.py", "--cfg-options", "a=1"],
              tmp_path / "transfer.log")
    executor = SlurmExecutor(RESOURCES)
    params = executor.parameters(job, dict(os.environ, OMP_NUM_THREADS="3"))
    script = _make_sbatch_string(command="python -m submitit.core._submit X", folder=tmp_path / "slurm", **params)
    lines = set(script.splitlines())
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-task=1",
            "#SBATCH --cpus-per-task=10", "#SBATCH --mem=491520M", "#SBATCH --time=720", "#SBATCH --partition=gpu",
            "#SBATCH --account=ssl", "#SBATCH --qos=high", "#SBATCH --constraint=a100", "#SBATCH --exclusive",
            "#SBATCH --signal=USR2@300", "#SBATCH --job-name=mixbench-transfer_voc",
            f"#SBATCH --chdir={os.getcwd()}", "export OMP_NUM_THREADS=3"} <= lines
    assert "export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))" in lines
    # 16 tasks: every one joins the process group through Slurm's variables, before the config overrides
    assert executor.command(job) == ["transfer", "random", "--config", "c.py", "--launcher", "slurm",
                                     "--cfg-options", "a=1"]


def test_a_one_task_job_runs_its_command_unchanged():
    job = Job("convert", ["demo-data", "out"], Path("x.log"))
    assert SlurmExecutor().command(job) == ["demo-data", "out"]


def test_an_unknown_resource_is_named():
    with pytest.raises(ValueError, match="unknown key.*gpus"):
        SlurmExecutor({"gpus": 8})


def test_a_requeued_job_continues_its_run_and_never_starts_over():
    assert MixbenchCommand(["pretrain", "c.py", "--force", "--cfg-options", "x=1"]).checkpoint().function.argv == \
        ["pretrain", "c.py", "--resume", "--cfg-options", "x=1"]
    assert MixbenchCommand(["transfer", "random", "--force"]).checkpoint().function.argv == ["transfer", "random"]


def test_a_stage_takes_the_shared_slurm_resources_then_its_own():
    from mixbench.executors import build_executor

    cfg = {"slurm": {"partition": "gpu", "timeout_min": 60, "pretrain": {"timeout_min": 4320, "tasks_per_node": 8}}}
    pretrain, transfer = build_executor("slurm", cfg, "pretrain"), build_executor("slurm", cfg, "transfer")
    assert (pretrain.resources["partition"], pretrain.resources["timeout_min"], pretrain.tasks) == ("gpu", 4320, 8)
    assert (transfer.resources["partition"], transfer.resources["timeout_min"], transfer.tasks) == ("gpu", 60, 1)
    with pytest.raises(ValueError, match="unknown 'k8s'"):
        build_executor("k8s", cfg, "pretrain")
