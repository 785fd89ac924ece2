"""The seeded ablation: its config's numbers, run keys (resumability), the mean/spread table by hand, and a tiny
end-to-end run (slow)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from mixbench.ablation import load_ablation_config, plan_runs, render_table, summarize, write_tables

CONFIG = "configs/pipeline/ablation_synthetic.py"


def test_shipped_config_states_the_ablation_variants():
    cfg = load_ablation_config(CONFIG)
    assert cfg["seeds"] == [0, 1, 2] and cfg["epochs"] == 12
    assert Path(cfg["base_config"]).name == "moco_r18_synthetic.py"
    g = dict(n=4, p=0.5, semantics="authors")
    r_authors = dict(n=5, p=0.5, lambda_decay=0.2, semantics="authors")
    r_paper = dict(r_authors, semantics="paper_eq")
    assert [(v["key"], v["mix"]) for v in cfg["variants"]] == [
        ("moco", {}),
        ("g", {"global_mix": g}),
        ("r-authors", {"region_mix": r_authors}),
        ("r-paper-eq", {"region_mix": r_paper}),
        ("gr", {"global_mix": g, "region_mix": r_authors}),
    ]
    assert cfg["evaluation"] == dict(knn_k=200, knn_T=0.1, flatness_T=1.0, size=64, batch_size=100)


def test_run_config_merges_schedule_seed_and_mixture(tmp_path):
    from mmengine.config import Config

    runs = plan_runs(load_ablation_config(CONFIG, {"epochs": 3, "seeds": [2]}))

    def load(run):
        path = tmp_path / f"{run.variant['key']}.py"
        path.write_text(run.config_text)
        return Config.fromfile(str(path))

    gr = load(runs[-1])
    pre = gr.model.data_preprocessor
    assert pre.type == "MixPreprocessor" and pre.global_mix.semantics == "authors"
    assert pre.region_mix == dict(n=5, p=0.5, lambda_decay=0.2, semantics="authors")
    assert gr.randomness.seed == 2 and gr.train_cfg.max_epochs == 3
    assert gr.param_scheduler[0].T_max == 3 and gr.param_scheduler[0].end == 3
    assert gr.train_dataloader.dataset.root == "data/demo/imagenet/train" and gr.train_dataloader.batch_size == 32
    assert gr.custom_hooks == [dict(type="MixbenchMetaHook")]  # no kNN monitor inside the timed runs
    assert gr.model.arch == "resnet18" and gr.model.K == 1024  # the rest comes from the base config
    assert "global_mix" not in load(runs[0]).model.data_preprocessor


def test_run_keys_follow_config_content_and_seed(tmp_path):
    a = plan_runs(load_ablation_config(CONFIG, {"work_dir": str(tmp_path)}))
    b = plan_runs(load_ablation_config(CONFIG, {"work_dir": str(tmp_path)}))
    assert len(a) == 15 and [r.key for r in a] == [r.key for r in b]  # same content: reused
    assert len({r.key for r in a}) == 15  # every variant and seed differs
    c = plan_runs(load_ablation_config(CONFIG, {"work_dir": str(tmp_path), "epochs": 11}))
    assert not {r.key for r in a} & {r.key for r in c}  # another schedule: nothing reused
    assert a[0].record_path.name == "moco_s0.json" and a[0].run_dir.name.startswith("moco_s0_")


def test_run_keys_leave_out_how_a_run_logs_and_state_what_decides_it(tmp_path):
    from mixbench.base.runkey import key_id

    cfg = load_ablation_config(CONFIG, {"work_dir": str(tmp_path), "seeds": [0], "only": ["moco"]})
    (run,) = plan_runs(cfg)
    logged = dict(cfg, common_cfg={**cfg["common_cfg"], "default_hooks.logger": dict(type="LoggerHook", interval=7)})
    assert [r.key for r in plan_runs(logged)] == [run.key]  # where and how a run logs does not decide its result
    faster = dict(cfg, common_cfg={**cfg["common_cfg"], "optim_wrapper.optimizer.lr": 0.5})
    assert [r.key for r in plan_runs(faster)] != [run.key]
    assert run.key == key_id(run.run_key) and run.run_dir.name == f"moco_s0_{run.key}"
    assert (run.run_key["config"], run.run_key["seed"], run.run_key["world_size"]) == ("moco_s0", 0, 1)
    assert run.run_key["data_root"] == str(Path("data/demo/imagenet/train").absolute())


def _record(variant: str, seed: int, knn: float, flat: float, name: str | None = None) -> dict:
    return {"variant": variant, "name": name or variant, "seed": seed, "mix": {}, "knn_top1": knn,
            "flatness_max_prob": flat, "knn_k": 200, "knn_T": 0.1, "n_train": 600, "n_val": 200, "eval_size": 64,
            "flatness_images": 200, "flatness_T": 1.0, "feature_dim": 512, "epochs": 12,
            "base_config": "moco_r18_synthetic.py"}


RECORDS = [
    _record("b", 1, 0.4, 0.02),
    _record("a", 0, 0.5, 0.010),
    _record("a", 2, 0.7, 0.030),
    _record("b", 0, 0.4, 0.04),
    _record("a", 1, 0.6, 0.020),
    _record("b", 2, 0.5, 0.03),
    _record("c", 0, 0.9, 0.05),
]


def test_summary_mean_and_spread_by_hand():
    rows = summarize(RECORDS, order=["a", "b"])
    assert [r["variant"] for r in rows] == ["a", "b", "c"]
    a, b, c = rows
    assert a["runs"] == 3 and a["seeds"] == [0, 1, 2]
    # a: 0.5, 0.6, 0.7 -> mean 0.6, sample std sqrt((0.01 + 0 + 0.01) / 2) = 0.1
    assert a["knn_top1"]["mean"] == pytest.approx(0.6) and a["knn_top1"]["std"] == pytest.approx(0.1)
    assert (a["knn_top1"]["min"], a["knn_top1"]["max"]) == (0.5, 0.7)
    flat = a["flatness_max_prob"]
    assert flat["mean"] == pytest.approx(0.02) and flat["std"] == pytest.approx(0.01)
    # b: 0.4, 0.4, 0.5 -> mean 13/30, deviations -1/30, -1/30, 2/30: variance (1 + 1 + 4) / 900 / 2 = 1/300
    assert b["knn_top1"]["mean"] == pytest.approx(13 / 30)
    assert b["knn_top1"]["std"] == pytest.approx(math.sqrt(1 / 300))
    assert c["runs"] == 1 and c["knn_top1"]["std"] is None  # one run has no spread


def test_rendered_table_by_hand():
    text = render_table(summarize(RECORDS, order=["a", "b"]))
    lines = [line for line in text.splitlines() if line.startswith("| a") or line.startswith("| b")]
    a_line, b_line = lines
    assert "60.00 ± 10.00 [50.00, 70.00]" in a_line and "0.02000 ± 0.01000 [0.01000, 0.03000]" in a_line
    # b - a = 13/30 - 0.6 = -1/6 -> -16.67 points; s.e. sqrt(0.01 / 3 + (1/300) / 3) = 1/15 -> -2.5
    assert "-16.67" in b_line and "-2.5" in b_line and "43.33 ± 5.77 [40.00, 50.00]" in b_line


def test_write_tables_from_records(tmp_path):
    paths = write_tables(RECORDS, tmp_path, ["a", "b", "c"], "mixbench ablation X")
    md = Path(paths["md"]).read_text()
    assert md.startswith("<!-- generated by `mixbench ablation X`") and "k=200" in md and "epochs: 12" in md
    rows = list(csv.DictReader(io.StringIO(Path(paths["csv"]).read_text())))
    assert [r["variant"] for r in rows] == ["a", "b", "c"]
    assert float(rows[0]["knn_top1_std"]) == pytest.approx(0.1) and rows[2]["knn_top1_std"] == ""
    summary = json.loads(Path(paths["json"]).read_text())
    assert summary["rows"][1]["flatness_max_prob"]["mean"] == pytest.approx(0.03)


TINY = """
_base_ = '{config}'
common_cfg = {{
    'custom_hooks': [dict(type='MixbenchMetaHook')],
    'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
    'model.K': 64,
}}
evaluation = dict(knn_k=20, knn_T=0.1, flatness_T=1.0, size=32, batch_size=64)
"""


@pytest.mark.slow
def test_tiny_ablation_end_to_end_and_resume(synthetic_root, tmp_path, monkeypatch):
    from mixbench.ablation import run_ablation
    from mixbench.base.config import resolve_config

    config = tmp_path / "tiny_ablation.py"
    config.write_text(TINY.format(config=resolve_config(CONFIG).resolve()))
    overrides = {"seeds": [0], "epochs": 1, "only": ["moco", "r-authors"], "work_dir": str(tmp_path / "work"),
                 "results_dir": str(tmp_path / "results"), "data_dir": str(synthetic_root["imagenet"].parent),
                 "synthetic": {}, "parallel_jobs": 2}
    first = run_ablation(config, overrides)
    assert first["trained"] == 2 and [r["variant"] for r in first["rows"]] == ["moco", "r-authors"]
    records = sorted((tmp_path / "results" / "records").glob("*.json"))
    assert [p.name for p in records] == ["moco_s0.json", "r-authors_s0.json"]
    rec = json.loads(records[1].read_text())
    assert rec["mix"]["region_mix"]["semantics"] == "authors" and rec["n_train"] == 32 and rec["n_val"] == 16
    assert 0.0 <= rec["knn_top1"] <= 1.0 and 1 / 512 <= rec["flatness_max_prob"] <= 1.0
    ckpt_meta = rec["checkpoint"]
    assert Path(ckpt_meta).is_file()
    # the run's checkpoint carries the mixture it was trained with
    from mixbench.base.safe_load import safe_torch_load

    meta = safe_torch_load(ckpt_meta)["meta"]["mixbench"]
    assert meta["mixture"]["region"]["semantics"] == "authors"
    assert rec["run_key"]["seed"] == 0 and rec["packages"]["mmengine"] == "0.10.7" and "git_commit" in rec
    second = run_ablation(config, overrides)  # everything reused: no training, same table
    assert second["trained"] == 0 and second["reused"] == 2
    assert second["rows"] == first["rows"]
