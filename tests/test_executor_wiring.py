"""How the executors are chosen and set up from a pipeline config and the command line, without a cluster or a
training run: ``--cfg-options`` of a pipeline config (its own keys and its stages' options), ``--executor`` and a
config's ``executor``, ``gpus_per_job``, ``--slurm`` pairs, how many jobs run at once, ``--status`` / ``--cancel``
on this machine's jobs, ``mixbench transfer``'s flag errors and the Ctrl-C message of a Slurm pipeline."""

from __future__ import annotations

import io
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

import mixbench.pipeline
from mixbench.base.procs import Interrupted
from mixbench.cli import main
from mixbench.executors import build_executor, jobs_at_once, parse_slurm_options
from mixbench.executors.slurm import SlurmExecutor
from mixbench.executors.torchrun import TorchrunExecutor
from mixbench.jobs import Job, LocalExecutor
from mixbench.pipeline import PipelineError, load_pipeline_config, run_pipeline

REPO = Path(__file__).resolve().parents[1]
MOCO = str(REPO / "configs/pretrain/moco_r18_synthetic.py")


def _pipeline(tmp_path: Path, extra: str = "") -> Path:
    """``tmp_path/pipe.py``: one MoCo pretraining (with an option of its own), the demo VOC suite, folders under
    ``tmp_path``; ``extra`` appended."""
    path = tmp_path / "pipe.py"
    path.write_text(f"pretrain = [dict(name='moco', config={MOCO!r}, cfg_options={{'model.K': 64}})]\n"
                    "suites = ['voc']\nbn_modes = ['frozen']\nsuite_scale = 'demo'\n"
                    f"data_dir = {str(tmp_path / 'data')!r}\nwork_dir = {str(tmp_path / 'work')!r}\n"
                    f"results_dir = {str(tmp_path / 'results')!r}\n"
                    "transfer_cfg_options = {'train_cfg.max_epochs': 1}\n" + extra)
    return path


# ------------------------------------------------------------------------------------ pipeline --cfg-options
def test_cfg_options_set_the_pipeline_keys_and_each_stage_own_options(tmp_path):
    path = _pipeline(tmp_path)
    cfg = load_pipeline_config(path, ["work_dir=/elsewhere", "bn_modes=[finetune,frozen]", "+seeds=[3,4]",
                                      "pretrain.0.name=mine", "pretrain.0.cfg_options.train_cfg.max_epochs=3",
                                      "transfer_cfg_options.train_dataloader.batch_size=4",
                                      "transfer_cfg_options.train_cfg.max_epochs=2"])
    assert cfg["work_dir"] == "/elsewhere" and cfg["bn_modes"] == ["finetune", "frozen"]
    assert cfg["seeds"] == {"voc": [3, 4]}
    [entry] = cfg["pretrain"]
    # a stage's own option is added beside the config's, its value as written (the stage parses it)
    assert entry["name"] == "mine" and entry["cfg_options"] == {"model.K": 64, "train_cfg.max_epochs": "3"}
    assert cfg["transfer_cfg_options"] == {"train_cfg.max_epochs": "2", "train_dataloader.batch_size": "4"}
    assert [Path(c).name for c in cfg["_transfer_configs"]["voc"]["finetune"]] == [
        "faster-rcnn_r18_fpn_finetune-bn_demo_voc0712.py"]
    # the file itself is unchanged: a load without options gives the config's own values
    plain = load_pipeline_config(path)
    assert plain["pretrain"][0]["cfg_options"] == {"model.K": 64} and plain["bn_modes"] == ["frozen"]


def test_a_stage_option_reaches_the_stage_command_line_and_its_run_key(tmp_path):
    from mixbench.pipeline import pretrain_stage

    def planned(options: list[str]) -> Job:
        jobs: list[Job] = []
        with pytest.raises(PipelineError, match="left no checkpoint"):  # nothing ran: no checkpoint to collect
            pretrain_stage(load_pipeline_config(_pipeline(tmp_path), options), False, jobs.extend)
        [job] = jobs
        return job

    plain, longer = planned([]), planned(["pretrain.0.cfg_options.train_cfg.max_epochs=3"])
    assert plain.argv[plain.argv.index("--cfg-options") + 1:] == ["model.K=64"]
    assert longer.argv[longer.argv.index("--cfg-options") + 1:] == ["model.K=64", "train_cfg.max_epochs=3"]
    # another setting is another run: its own work dir (named by its run key), not a resume of the other
    assert longer.log.parent != plain.log.parent and longer.log.parent.parent == plain.log.parent.parent


def test_cfg_options_errors_name_the_config(tmp_path):
    path = _pipeline(tmp_path)
    cases = [
        ("pretrain.1.cfg_options.train_cfg.max_epochs=3", r"pretrain is a list of 1 items; '1' is not an index"),
        ("pretrain.2.name=x", r"pretrain is a list of 1 items; '2' is not an index"),
        ("work_dri=/x", r"unknown config key: the top level has no 'work_dri'; did you mean work_dir\?"),
        ("slurm.timeout_min=5", r"unknown config key: the top level has no 'slurm'.* write \+slurm.timeout_min"),
        ("bn_modes", r"expected KEY=VALUE"),
    ]
    for pair, message in cases:
        with pytest.raises(PipelineError, match=rf"^{path}: --cfg-options .*{message}"):
            load_pipeline_config(path, [pair])
    # through the command line: exit status 2 and the same one-line error
    assert main(["pipeline", str(path), "--cfg-options", "work_dri=/x", "--status"]) == 2


# ------------------------------------------------------------------------------ executor choice and settings
def test_the_executor_flag_overrides_the_config_and_a_wrong_one_is_named(tmp_path, monkeypatch):
    path = _pipeline(tmp_path, "executor = 'slurm'\n")
    assert load_pipeline_config(path)["executor"] == "slurm"
    assert load_pipeline_config(path, executor="torchrun")["executor"] == "torchrun"
    assert load_pipeline_config(_pipeline(tmp_path))["executor"] == "local"  # no `executor` key: local

    seen: list[dict] = []
    monkeypatch.setattr(mixbench.pipeline, "run_pipeline", lambda cfg, force=False: seen.append(cfg))
    assert main(["pipeline", str(path), "--executor", "local"]) == 0
    assert [cfg["executor"] for cfg in seen] == ["local"]

    wrong = _pipeline(tmp_path, "executor = 'kubernetes'\n")
    with pytest.raises(PipelineError, match=rf"^{wrong}: executor 'kubernetes' is not one of local, torchrun, slurm$"):
        load_pipeline_config(wrong)
    with pytest.raises(SystemExit):  # argparse refuses an unknown --executor
        main(["pipeline", str(path), "--executor", "kubernetes"])


@pytest.mark.parametrize("value", ["0", "-2", "2.5", "True", "'8'"])
def test_gpus_per_job_must_be_a_positive_integer(tmp_path, value):
    path = _pipeline(tmp_path, f"executor = 'torchrun'\ngpus_per_job = {value}\n")
    with pytest.raises(PipelineError, match=rf"^{path}: gpus_per_job must be a positive integer, not "):
        run_pipeline(path)
    assert not (tmp_path / "data").exists()  # stopped before any stage


def test_gpus_per_job_beyond_the_visible_gpus_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    path = _pipeline(tmp_path, "executor = 'torchrun'\ngpus_per_job = 4\n")
    with pytest.raises(PipelineError, match=rf"^{path}: a job needs 4 GPUs but only 3 are visible \(0,1,2\)$"):
        run_pipeline(path)
    executor = build_executor("torchrun", {"gpus_per_job": 2}, "transfer")
    assert (executor.world_size, executor.launcher, executor.max_parallel) == (2, "pytorch", 1)  # "2" left over


def test_slurm_resources_of_a_stage_and_unknown_keys():
    cfg = {"slurm": dict(cpus_per_task=4, timeout_min=60, pretrain=dict(timeout_min=4320, tasks_per_node=2))}
    pretrain, transfer = (build_executor("slurm", cfg, stage) for stage in ("pretrain", "transfer"))
    assert (pretrain.resources["timeout_min"], pretrain.resources["cpus_per_task"], pretrain.world_size,
            pretrain.launcher) == (4320, 4, 2, "slurm")
    assert (transfer.resources["timeout_min"], transfer.world_size, transfer.launcher) == (60, 1, "none")
    with pytest.raises(ValueError, match="unknown key\\(s\\) gpus; use nodes, "):
        build_executor("slurm", {"slurm": {"transfer": {"gpus": 8}}}, "transfer")


def test_a_resource_set_to_none_is_left_out_of_the_request(tmp_path):
    from submitit.slurm.slurm import _make_sbatch_string

    given = parse_slurm_options(["gpus_per_task=None", "mem_gb=None", "cpus_per_task=None"])
    executor = SlurmExecutor({"gpus_per_task": 1, "mem_gb": 2, "cpus_per_task": 4, "timeout_min": 9, **given})
    params = executor.parameters(Job("x", ["demo-data", "d"], tmp_path / "x.log"), dict(os.environ))
    lines = _make_sbatch_string(command="true", folder=tmp_path, **params).splitlines()
    assert "#SBATCH --time=9" in lines
    assert not [line for line in lines if line.startswith(("#SBATCH --gpus", "#SBATCH --mem", "#SBATCH --cpus"))]
    assert jobs_at_once("slurm", {}, executor, 3) == (3, 1)  # no CPUs asked for: one thread


def test_slurm_jobs_must_see_the_kind_of_device_this_process_sees(tmp_path, monkeypatch):
    """Run keys are computed by the planning process for its own device kind: GPU jobs planned without a GPU (or
    CPU jobs planned on a GPU machine) would record under other keys, so the command stops before any stage."""
    import torch

    from mixbench.executors import check_device_kind

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_device_kind("slurm", SlurmExecutor({"cpus_per_task": 4}))
    check_device_kind("torchrun", TorchrunExecutor(nproc_per_job=2, devices=["0", "1"]))  # runs here: its kind
    for resources, asked in [({"gpus_per_task": 1}, "gpus_per_task=1"), ({"sbatch": {"gres": "gpu:8"}},
                             "sbatch.gres=gpu:8"), ({"sbatch": {"gpus-per-node": 8}}, "sbatch.gpus-per-node=8")]:
        with pytest.raises(ValueError, match=rf"^the Slurm jobs ask for GPUs \({asked}\) but this machine has no GPU"):
            check_device_kind("slurm", SlurmExecutor(resources))
    path = _pipeline(tmp_path, "executor = 'slurm'\nslurm = dict(cpus_per_task=2, transfer=dict(gpus_per_task=1))\n")
    with pytest.raises(PipelineError, match=rf"^{path}: the Slurm jobs ask for GPUs \(gpus_per_task=1\)"):
        run_pipeline(path)
    assert not (tmp_path / "data").exists()  # stopped before any stage
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="^the Slurm jobs ask for no GPU but this machine has GPU"):
        check_device_kind("slurm", SlurmExecutor({"cpus_per_task": 4}))


def test_parse_slurm_options_nests_dotted_keys_and_reads_values():
    assert parse_slurm_options(["tasks_per_node=2", "partition=gpu", "sbatch.exclusive=true",
                                "sbatch.mail-type=END", "pretrain.timeout_min=4320", "mem_gb=1.5"]) == {
        "tasks_per_node": 2, "partition": "gpu", "sbatch": {"exclusive": True, "mail-type": "END"},
        "pretrain": {"timeout_min": 4320}, "mem_gb": 1.5}
    assert parse_slurm_options([]) == {} and parse_slurm_options(None) == {}
    with pytest.raises(ValueError, match=r"^--slurm 'tasks_per_node': expected KEY=VALUE$"):
        parse_slurm_options(["tasks_per_node"])
    with pytest.raises(ValueError, match=r"--slurm sbatch.exclusive=\.\.\.: sbatch is set to 1, not to a dict"):
        parse_slurm_options(["sbatch=1", "sbatch.exclusive=true"])


# ----------------------------------------------------------------------------------------------- jobs at once
@pytest.fixture
def eight_cpus(monkeypatch):
    """A CPU machine of 8 cores, whatever this one is."""
    import torch

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_jobs_at_once_local(eight_cpus, monkeypatch):
    local = LocalExecutor()
    assert jobs_at_once("local", {}, local, 5) == (1, 1)  # the default: one job at a time
    assert jobs_at_once("local", {"parallel_jobs": "auto"}, local, 5) == (8, 1)  # 8 cores / 1 thread
    assert jobs_at_once("local", {"parallel_jobs": "auto", "threads_per_job": 3}, local, 5) == (2, 3)  # 8 // 3
    assert jobs_at_once("local", {"parallel_jobs": "auto", "threads_per_job": 16}, local, 5) == (1, 16)
    assert jobs_at_once("local", {"parallel_jobs": 3, "threads_per_job": 2}, local, 5) == (3, 2)
    assert jobs_at_once("local", {"parallel_jobs": 0}, local, 5) == (1, 1)  # never zero: nothing would start
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert jobs_at_once("local", {"parallel_jobs": "auto"}, local, 5) == (1, 1)  # a GPU job runs alone


def test_jobs_at_once_torchrun(eight_cpus):
    cpu = TorchrunExecutor(nproc_per_job=2, devices=[])
    assert jobs_at_once("torchrun", {}, cpu, 9) == (4, 1)  # 8 cores / (2 processes x 1 thread)
    assert jobs_at_once("torchrun", {"threads_per_job": 2}, cpu, 9) == (2, 2)  # 8 // (2 x 2)
    gpus = TorchrunExecutor(nproc_per_job=3, devices=[str(i) for i in range(8)])
    assert jobs_at_once("torchrun", {}, gpus, 9) == (2, 1)  # 8 GPUs in whole slices of 3: two
    assert jobs_at_once("torchrun", {"parallel_jobs": 5}, gpus, 9) == (2, 1)  # no more than the slices
    assert jobs_at_once("torchrun", {"parallel_jobs": 1}, gpus, 9) == (1, 1)


def test_jobs_at_once_slurm(eight_cpus):
    slurm = SlurmExecutor({"cpus_per_task": 6})
    assert jobs_at_once("slurm", {}, slurm, 7) == (7, 6)  # every job submitted; threads = the task's CPUs
    assert jobs_at_once("slurm", {}, slurm, 0) == (1, 6)
    assert jobs_at_once("slurm", {"threads_per_job": 2, "parallel_jobs": 3}, slurm, 7) == (3, 2)
    assert jobs_at_once("slurm", {}, SlurmExecutor(), 2) == (2, 1)  # default: 1 CPU per task


# ----------------------------------------------------------------------------------------- --status, --cancel
class _Sleeper(LocalExecutor):
    """Starts a job that sleeps, listed in the work dir's jobs.json as a pipeline's jobs are."""

    def command(self, job: Job) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(300)"]


def test_status_and_cancel_on_an_empty_work_dir(tmp_path, capsys):
    path = _pipeline(tmp_path)
    assert main(["pipeline", str(path), "--status"]) == 0
    assert capsys.readouterr().out == f"no jobs recorded under {tmp_path / 'work'}\n"
    (tmp_path / "work").mkdir()
    assert main(["pipeline", str(path), "--status"]) == 0
    assert capsys.readouterr().out == f"no jobs recorded under {tmp_path / 'work'}\n"
    assert main(["pipeline", str(path), "--cancel"]) == 0
    assert capsys.readouterr().out == f"ended 0 job(s) of {tmp_path / 'work'}\n"


def test_status_lists_the_local_jobs_of_jobs_json_and_cancel_stops_them(tmp_path, capsys):
    path = _pipeline(tmp_path)
    work = tmp_path / "work"
    left = Job("pretrain moco", [], work / "pretrain" / "moco.log")
    _Sleeper(state_dir=work).start(left, dict(os.environ))  # its pipeline "died": nobody polls it
    try:
        assert main(["pipeline", str(path), "--status"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].split() == ["job", "executor", "id", "state", "reason", "log"]
        [row] = [line for line in out if "pretrain moco" in line]
        assert row.split()[2:5] == ["local", str(left.handle.pid), "running"]
        assert f"on {socket.gethostname()} since " in row and row.endswith(str(left.log))

        assert main(["pipeline", str(path), "--cancel"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == f"ended 1 job(s) of {work}: pretrain moco"
        assert left.handle.wait(timeout=30) != 0  # stopped, not finished
        assert main(["pipeline", str(path), "--status"]) == 0
        assert capsys.readouterr().out == f"no jobs recorded under {work}\n"
    finally:
        if left.handle.poll() is None:
            os.killpg(left.handle.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------ mixbench transfer flags
@pytest.mark.parametrize("flags, message", [
    (["--slurm", "tasks_per_node=2"], "--slurm needs --executor"),
    (["--gpus-per-job", "2"], "--gpus-per-job needs --executor"),
    (["--parallel", "2"], "--parallel needs --executor"),
    (["--executor", "slurm", "--gpus-per-job", "2"], "--gpus-per-job is torchrun's; with --executor slurm give "
                                                     "--slurm tasks_per_node=N gpus_per_task=1"),
    (["--executor", "local", "--gpus-per-job", "2"], "--gpus-per-job is torchrun's; with --executor local give "
                                                     "--executor torchrun"),
    (["--executor", "torchrun", "--slurm", "nodes=2"], "--slurm sets Slurm resources; it needs --executor slurm, "
                                                       "not torchrun"),
    (["--executor", "local", "--launcher", "pytorch"], "--launcher pytorch: with --executor the executor starts "
                                                       "each run's processes"),
    (["--executor", "slurm", "--slurm", "tasks_per_node"], "--slurm 'tasks_per_node': expected KEY=VALUE"),
    (["--executor", "slurm", "--slurm", "gpus_per_task=1"], "the Slurm jobs ask for GPUs (gpus_per_task=1) but this "
                                                            "machine has no GPU"),
])
def test_transfer_flag_errors(tmp_path, capsys, monkeypatch, flags, message):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["transfer", "random", "--suite", "voc", "--bn", "frozen", "--records-dir", str(tmp_path / "rec"),
            "--work-root", str(tmp_path / "work"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mixbench transfer: error: {message}"), err
    assert not (tmp_path / "work").exists() and not (tmp_path / "rec").exists()  # nothing started


def test_transfer_job_counts_must_be_positive(capsys):
    for flag in ("--gpus-per-job", "--parallel"):
        with pytest.raises(SystemExit):
            main(["transfer", "random", "--executor", "torchrun", flag, "0"])
        assert "'0' is not a positive integer" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------- Ctrl-C
def _interrupted(monkeypatch):
    def run(cfg, force=False):
        raise Interrupted("received SIGINT")

    monkeypatch.setattr(mixbench.pipeline, "run_pipeline", run)


def test_ctrl_c_on_a_slurm_pipeline_says_how_to_follow_and_cancel_its_jobs(tmp_path, monkeypatch, capsys):
    _interrupted(monkeypatch)
    path = _pipeline(tmp_path)
    assert main(["pipeline", str(path), "--executor", "slurm", "--cfg-options", "work_dir=/scratch/w",
                 "+seeds=[1]"]) == 130
    err = capsys.readouterr().err.strip()
    again = f"mixbench pipeline {path} --cfg-options work_dir=/scratch/w"  # the same work dir, not other options
    assert err == (f"mixbench pipeline: interrupted (received SIGINT); its Slurm jobs go on: `{again} --status` lists "
                   f"them, `{again} --cancel` cancels them, a rerun follows them")


def test_ctrl_c_on_a_local_pipeline_says_its_jobs_stopped(tmp_path, monkeypatch, capsys):
    _interrupted(monkeypatch)
    assert main(["pipeline", str(_pipeline(tmp_path, "executor = 'slurm'\n")), "--executor", "local"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "mixbench pipeline: interrupted (received SIGINT); running jobs stopped, rerun to resume"


# ------------------------------------------------------------------------------------- the full-scale config
def test_the_full_scale_config_asks_for_8_gpus_per_job_and_each_stage_its_time(tmp_path, monkeypatch):
    from submitit.slurm.slurm import _make_sbatch_string

    path = REPO / "configs/pipeline/moco_vs_mix_r50_in1k.py"
    cfg = load_pipeline_config(path, ["slurm.partition=gpu"], "slurm")
    assert load_pipeline_config(path)["executor"] == "local"  # the user picks torchrun or slurm
    job = Job("pretrain moco", ["pretrain", "c.py"], tmp_path / "x.log")
    expected = {"pretrain": (4320, 8), "transfer": (1440, 3)}  # 72 h and 24 h; requeues at a time limit
    for stage, (minutes, requeues) in expected.items():
        executor = build_executor("slurm", cfg, stage)
        lines = set(_make_sbatch_string(command="x", folder=tmp_path, **executor.parameters(job, {})).splitlines())
        assert {"#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-task=1",
                "#SBATCH --cpus-per-task=10", "#SBATCH --mem=327680M", f"#SBATCH --time={minutes}",
                "#SBATCH --partition=gpu"} <= lines
        assert not [line for line in lines if line.startswith(("#SBATCH --account", "#SBATCH --qos"))]
        assert (executor.resources["max_requeues"], executor.world_size, executor.launcher) == (requeues, 8, "slurm")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    node = build_executor("torchrun", load_pipeline_config(path, executor="torchrun"), "pretrain")
    assert (node.world_size, node.max_parallel) == (8, 1)  # the node's 8 GPUs per job, one job at a time


# ------------------------------------------------------------------------------------------ a failed job's log
class _Ended:
    """An executor whose jobs have ended with exit status 1 as soon as they start, their logs already written."""

    def start(self, job: Job, env: dict[str, str]) -> None:
        job.handle = object()

    def poll(self, job: Job) -> int | None:
        return 1

    def stop(self, jobs: list[Job]) -> None:
        pass


def test_a_failed_job_shows_its_command_error_above_the_traceback_that_ends_its_log(tmp_path, capsys):
    from mixbench.jobs import JobError, run_jobs
    from mixbench.progress import ProgressBoard

    error = "mixbench transfer: error: /w/run: training diverged: loss=nan at iteration 3"
    traceback = [f"  File \"submitit/core/submission.py\", line {i}, in process_job" for i in range(20)]
    buried, short = tmp_path / "buried.log", tmp_path / "short.log"
    buried.write_text("\n".join(["loading", error, *traceback, "srun: error: task 0: Exited with exit code 1"]))
    short.write_text("\n".join(["loading", error]))
    jobs = [Job("transfer a", ["transfer"], buried), Job("transfer b", ["transfer"], short)]
    with pytest.raises(JobError, match=f"failed: transfer a \\(log {buried}\\); transfer b"):
        run_jobs(jobs, parallel=2, threads=1, executor=_Ended(), board=ProgressBoard(stream=io.StringIO()), log=print)
    out = capsys.readouterr().out.splitlines()
    first = out.index(next(line for line in out if line.startswith("transfer a: FAILED")))
    # the error line, then the last 15 lines of the log
    assert out[first + 1:first + 3] == [f"    {error}", "    ..."]
    srun = buried.read_text().splitlines()[-1]
    assert out[first + 3:first + 18] == ["    " + line for line in [*traceback[-14:], srun]]
    second = out.index(next(line for line in out if line.startswith("transfer b: FAILED")))
    assert out[second + 1:second + 3] == ["    loading", f"    {error}"]  # within the tail: shown once
