"""``mixbench ablation CONFIG``: seeded pretraining variants -> kNN top-1 and flatness per run -> mean/spread table.

One ablation config (``configs/pipeline/ablation_synthetic.py``) names a base pretraining config, the variants
(mixture settings merged into ``model.data_preprocessor``), the seeds and the schedule. Each (variant, seed) is one
run: a leaf config (base + its deltas) is written to ``work_dir/runs/<variant>_s<seed>_<key>/`` and pretrained
by a ``mixbench pretrain`` subprocess through :func:`mixbench.jobs.run_jobs` (parallel one-thread jobs on CPU).
The final checkpoint is then read back through :func:`mixbench.evaluate.load_feature_extractor` (the converter's
checked path) for the weighted kNN top-1 (``mixbench.pretrain.knn``) and Fig. 5's mean maximum probability
(``mixbench.pretrain.flatness``). Each run leaves one JSON record in ``results_dir/records/``; the tables
(``results_dir/table.{md,csv}``) are built from the records only.

Resumable: each run is keyed by its pretraining run key (:func:`mixbench.pretrain.train.pretrain_run_key`: the
leaf config's resolved content, data root and seed). A record with the same key is reused; a finished pretraining
(``stage.json`` with the checkpoint's sha256) is evaluated without training; an interrupted one resumes from its
last mmengine checkpoint. Records carry where they were made (:func:`mixbench.base.provenance.provenance`).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixbench.base.config import resolve_config
from mixbench.base.io import atomic_write_json, atomic_write_text, sha256_file
from mixbench.base.provenance import provenance
from mixbench.base.runkey import key_id
from mixbench.executors import jobs_at_once
from mixbench.jobs import Job, LocalExecutor, finished_pretraining, last_checkpoint, run_jobs
from mixbench.pipeline import PipelineError, ensure_data

REQUIRED_KEYS = ("base_config", "seeds", "epochs", "variants", "data_dir", "work_dir", "results_dir", "evaluation")
METRICS = (("knn_top1", "kNN top-1 (%)", 100.0, 2), ("flatness_max_prob", "mean max prob (Fig. 5)", 1.0, 5))


class AblationError(PipelineError):
    """The ablation config is wrong or a run failed; the message names the file or the run."""


@dataclass
class Run:
    """One (variant, seed) pretraining run and where its files go."""

    variant: dict[str, Any]
    seed: int
    key: str  # id of run_key (mixbench.base.runkey.key_id)
    run_dir: Path
    config_path: Path
    record_path: Path
    config_text: str
    epochs: int
    run_key: dict[str, Any]


def _log(msg: str) -> None:
    print(f"[ablation {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_ablation_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ablation config as a dict, with command-line ``overrides`` (seeds, epochs, dirs, variant keys)."""
    from mmengine.config import Config

    try:
        path = resolve_config(path)
    except FileNotFoundError as err:
        raise AblationError(str(err)) from None
    cfg = Config.fromfile(str(path)).to_dict()
    for k, v in (overrides or {}).items():
        if v is not None:
            cfg[k] = v
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise AblationError(f"{path}: ablation config lacks {missing}")
    keys = [v.get("key") for v in cfg["variants"]]
    if None in keys or len(set(keys)) != len(keys):
        raise AblationError(f"{path}: every variant needs a unique 'key', got {keys}")
    if cfg.get("only"):
        unknown = sorted(set(cfg["only"]) - set(keys))
        if unknown:
            raise AblationError(f"{path}: unknown variant keys {unknown}; the config has {keys}")
        cfg["variants"] = [v for v in cfg["variants"] if v["key"] in cfg["only"]]
    try:
        cfg["base_config"] = str(resolve_config(cfg["base_config"]))
    except FileNotFoundError as err:
        raise AblationError(f"{path}: {err}") from None
    cfg["_path"] = str(path)
    return cfg


def run_options(cfg: dict[str, Any], variant: dict[str, Any], seed: int) -> dict[str, Any]:
    """What one run changes in the base config, as dotted keys: schedule, data, seed, common deltas, mixture."""
    epochs = int(cfg["epochs"])
    options: dict[str, Any] = {
        "train_cfg.max_epochs": epochs,
        "param_scheduler": [dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=epochs, T_max=epochs)],
        "train_dataloader.dataset.root": str(Path(cfg["data_dir"]) / "imagenet" / "train"),
        "randomness": dict(seed=int(seed), deterministic=False),
        **(cfg.get("common_cfg") or {}),
    }
    for name, mix in (variant.get("mix") or {}).items():
        if name not in ("global_mix", "region_mix"):
            raise AblationError(f"{cfg['_path']}: variant {variant['key']}: unknown mixture {name!r}")
        options[f"model.data_preprocessor.{name}"] = dict(mix)
    return options


def run_config_text(cfg: dict[str, Any], variant: dict[str, Any], seed: int) -> str:
    """A leaf pretraining config for one run: ``_base_`` = the ablation's base config, then only the deltas
    (dotted keys nested, so mmengine merges dicts and replaces lists exactly as ``--cfg-options`` would)."""
    nested: dict[str, Any] = {}
    for dotted, value in run_options(cfg, variant, seed).items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    lines = [f"# generated by mixbench.ablation from {cfg['_path']}: variant {variant['key']!r}, seed {seed}",
             f"_base_ = {str(Path(cfg['base_config']).resolve())!r}", ""]
    lines += [f"{key} = {value!r}" for key, value in nested.items()]
    return "\n".join(lines) + "\n"


def leaf_run_key(text: str, name: str) -> dict[str, Any]:
    """The pretraining run key of the leaf config ``text`` saved as ``<name>.py``, resolved as ``mixbench pretrain``
    resolves it (the base config's content included, so editing a base file retrains instead of reusing)."""
    from mixbench.pretrain.train import build_config, pretrain_run_key

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.py"
        path.write_text(text)
        try:
            return pretrain_run_key(build_config(path, work_dir=tmp), path)
        except (ValueError, FileNotFoundError) as err:
            raise AblationError(f"run {name}: {err}") from None


def plan_runs(cfg: dict[str, Any]) -> list[Run]:
    """Every (variant, seed) of the config, keyed by its pretraining run key, in table order."""
    runs = []
    for variant in cfg["variants"]:
        for seed in cfg["seeds"]:
            name = f"{variant['key']}_s{seed}"
            text = run_config_text(cfg, variant, seed)
            key = leaf_run_key(text, name)
            run_dir = Path(cfg["work_dir"]) / "runs" / f"{name}_{key_id(key)}"
            runs.append(Run(variant, int(seed), key_id(key), run_dir, run_dir / f"{name}.py",
                            Path(cfg["results_dir"]) / "records" / f"{name}.json", text, int(cfg["epochs"]), key))
    return runs


def _read_record(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AblationError(f"{path}: not a JSON record ({err}); delete it to rerun") from None


def pretrain_runs(runs: list[Run], parallel: int, threads: int, force: bool = False) -> dict[str, Path]:
    """Pretrain every run that has no finished checkpoint; return {run key: final checkpoint}."""
    done: dict[str, Path] = {}
    jobs = []
    for run in runs:
        if not force and (ckpt := finished_pretraining(run.run_dir / "stage.json", None)):
            done[run.key] = ckpt
            continue
        run.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.config_path, run.config_text)
        argv = ["pretrain", str(run.config_path), "--work-dir", str(run.run_dir)]
        if not force and (run.run_dir / "last_checkpoint").is_file():
            argv.append("--resume")
        jobs.append(Job(f"pretrain {run.variant['key']} seed {run.seed}", argv, run.run_dir / "pretrain.log"))
    try:
        run_jobs(jobs, parallel, threads)
    finally:  # also after a failed job: mark every run that reached its last epoch, so a rerun reuses it
        for run in runs:
            ckpt = None if run.key in done else last_checkpoint(run.run_dir)
            if ckpt is not None and ckpt.name == f"epoch_{run.epochs}.pth":
                atomic_write_json(run.run_dir / "stage.json", {"checkpoint": str(ckpt), "sha256": sha256_file(ckpt)})
                done[run.key] = ckpt
    missing = [f"{r.variant['key']} seed {r.seed} ({r.run_dir})" for r in runs if r.key not in done]
    if missing:
        raise AblationError(f"runs without a final epoch_N.pth checkpoint: {'; '.join(missing)}")
    return done


def evaluate_checkpoint(checkpoint: Path, data_dir: str | Path, evaluation: dict[str, Any]) -> dict[str, Any]:
    """kNN top-1 (train -> val) and Fig. 5's mean max probability (val) of a saved checkpoint."""
    from torch.utils.data import DataLoader

    from mixbench.evaluate import load_feature_extractor
    from mixbench.pretrain.data import ImageFolderViews, eval_collate
    from mixbench.pretrain.flatness import sorted_distribution
    from mixbench.pretrain.knn import knn_top1

    root = Path(data_dir) / "imagenet"
    size, batch = int(evaluation["size"]), int(evaluation.get("batch_size", 100))

    def loader(split: str) -> DataLoader:
        ds = ImageFolderViews(str(root / split), aug="center", size=size, n_views=1)
        return DataLoader(ds, batch_size=batch, num_workers=0, collate_fn=eval_collate)

    extractor = load_feature_extractor(checkpoint)
    train, val = loader("train"), loader("val")
    knn = knn_top1(extractor, train, val, k=int(evaluation["knn_k"]), T=float(evaluation["knn_T"]),
                   num_classes=len(train.dataset.classes))
    curve, n_images = sorted_distribution(extractor, val, T=float(evaluation["flatness_T"]))
    return {
        "knn_top1": knn["top1"], "knn_k": knn["k"], "knn_T": float(evaluation["knn_T"]),
        "n_train": knn["n_train"], "n_val": knn["n_val"],
        "flatness_max_prob": float(curve[0]), "flatness_T": float(evaluation["flatness_T"]),
        "flatness_images": n_images, "feature_dim": int(curve.numel()), "eval_size": size,
    }


def summarize(records: list[dict[str, Any]], order: list[str] | None = None) -> list[dict[str, Any]]:
    """Per variant: number of runs, seeds, and for each metric the mean, the sample standard deviation (n - 1;
    None for one run), min and max. Variants in ``order`` (their keys) first, then the rest in record order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(rec["variant"], []).append(rec)
    keys = [k for k in (order or []) if k in groups] + [k for k in groups if k not in (order or [])]
    rows = []
    for key in keys:
        recs = sorted(groups[key], key=lambda r: r["seed"])
        row: dict[str, Any] = {"variant": key, "name": recs[0]["name"], "runs": len(recs),
                               "seeds": [r["seed"] for r in recs], "mix": recs[0]["mix"]}
        for metric, *_ in METRICS:
            values = [float(r[metric]) for r in recs]
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
            row[metric] = {"mean": mean, "std": std, "min": min(values), "max": max(values)}
        rows.append(row)
    return rows


def _difference_in_se(a: dict[str, Any], b: dict[str, Any], n_a: int, n_b: int) -> float | None:
    """(mean_a - mean_b) / sqrt(s_a^2 / n_a + s_b^2 / n_b): the difference in units of its standard error."""
    if a["std"] is None or b["std"] is None:
        return None
    se = math.sqrt(a["std"] ** 2 / n_a + b["std"] ** 2 / n_b)
    return (a["mean"] - b["mean"]) / se if se > 0 else None


def render_table(rows: list[dict[str, Any]], fmt: str = "github") -> str:
    """The table of :func:`summarize` (tabulate): mean ± std [min, max] per metric; kNN difference to row 1."""
    from tabulate import tabulate

    def cell(stat: dict[str, Any], scale: float, digits: int) -> str:
        spread = "" if stat["std"] is None else f" ± {stat['std'] * scale:.{digits}f}"
        return (f"{stat['mean'] * scale:.{digits}f}{spread} "
                f"[{stat['min'] * scale:.{digits}f}, {stat['max'] * scale:.{digits}f}]")

    headers = ["variant", "mixture", "seeds"] + [title for _, title, _, _ in METRICS]
    headers += ["kNN Δ vs first row (points)", "Δ / s.e."]
    ref = rows[0] if rows else None
    table = []
    for row in rows:
        line = [row["name"], _describe_mix(row["mix"]), ",".join(str(s) for s in row["seeds"])]
        line += [cell(row[m], scale, digits) for m, _, scale, digits in METRICS]
        delta = (row["knn_top1"]["mean"] - ref["knn_top1"]["mean"]) * 100
        ratio = _difference_in_se(row["knn_top1"], ref["knn_top1"], row["runs"], ref["runs"])
        line += ["" if row is ref else f"{delta:+.2f}", "" if row is ref or ratio is None else f"{ratio:+.1f}"]
        table.append(line)
    return tabulate(table, headers=headers, tablefmt=fmt, disable_numparse=True)


def _describe_mix(mix: dict[str, Any]) -> str:
    parts = []
    if mix.get("global_mix"):
        g = mix["global_mix"]
        parts.append(f"G n={g['n']} p={g['p']} {g.get('semantics', 'paper_eq')}")
    if mix.get("region_mix"):
        r = mix["region_mix"]
        parts.append(f"R n={r['n']} p={r['p']} decay={r['lambda_decay']} {r.get('semantics', 'paper_eq')}")
    return "; ".join(parts) or "none"


def write_tables(records: list[dict[str, Any]], results_dir: Path, order: list[str], source: str) -> dict[str, Path]:
    """``table.md`` (with how it was made), ``table.csv`` and ``summary.json`` from the records, atomically."""
    rows = summarize(records, order)
    first = rows[0] if rows else {}
    recs = records[0] if records else {}
    note = (
        f"<!-- generated by `{source}` from {results_dir / 'records'}; do not edit -->\n\n"
        f"Mean ± sample standard deviation over seeds [min, max]. kNN: weighted vote k={recs.get('knn_k')}, "
        f"T={recs.get('knn_T')}, {recs.get('n_train')} train -> {recs.get('n_val')} val images (centre crop "
        f"{recs.get('eval_size')} px). Fig. 5 number: mean over {recs.get('flatness_images')} val images of the "
        f"largest softmax(pooled output / {recs.get('flatness_T')}) probability ({recs.get('feature_dim')}-d; "
        f"lower = flatter). Δ / s.e.: the kNN difference to {first.get('name')!s} over its standard error "
        f"sqrt(s1²/n1 + s2²/n2). Schedule: {recs.get('base_config')}, epochs: {recs.get('epochs')}.\n\n"
    )
    paths = {
        "md": atomic_write_text(results_dir / "table.md", note + render_table(rows, "github") + "\n"),
        "csv": atomic_write_text(results_dir / "table.csv", _csv(rows)),
        "json": atomic_write_json(results_dir / "summary.json", {"rows": rows, "source": source}),
    }
    return paths


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", "name", "runs", "seeds"] + [f"{m}_{s}" for m, *_ in METRICS
                                                        for s in ("mean", "std", "min", "max")])
    for row in rows:
        stats = [row[m][s] for m, *_ in METRICS for s in ("mean", "std", "min", "max")]
        w.writerow([row["variant"], row["name"], row["runs"], " ".join(map(str, row["seeds"]))]
                   + ["" if v is None else f"{v:.6g}" for v in stats])
    return buf.getvalue()


def run_ablation(config: str | Path, overrides: dict[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Run (or reuse) every run of the ablation and write its tables; returns {'rows', 'tables', 'seconds', ...}."""
    import torch

    t0 = time.time()
    cfg = load_ablation_config(config, overrides)
    parallel, threads = jobs_at_once("local", cfg, LocalExecutor(), len(cfg["variants"]) * len(cfg["seeds"]))
    ensure_data(cfg)
    runs = plan_runs(cfg)
    _log(f"config {cfg['_path']}: {len(cfg['variants'])} variants x {len(cfg['seeds'])} seeds, {cfg['epochs']} "
         f"epochs each; up to {parallel} job(s) at a time, {threads} torch thread(s) each")

    todo = []
    for run in runs:
        rec = None if force else _read_record(run.record_path)
        if rec is not None and rec.get("key") == run.key:
            _log(f"{run.variant['key']} seed {run.seed}: record {run.record_path} found (key {run.key}); reused")
        else:
            todo.append(run)
    t_train = time.time()
    checkpoints = pretrain_runs(todo, parallel, threads, force)
    train_seconds = time.time() - t_train

    # one thread, as the jobs: on shared cores OpenMP's spin-waits cost more than a second thread gains
    torch.set_num_threads(threads)
    t_eval = time.time()
    for run in todo:
        result = evaluate_checkpoint(checkpoints[run.key], cfg["data_dir"], cfg["evaluation"])
        record = {
            "variant": run.variant["key"], "name": run.variant.get("name", run.variant["key"]),
            "mix": run.variant.get("mix") or {}, "seed": run.seed, "key": run.key, "epochs": int(cfg["epochs"]),
            "base_config": Path(cfg["base_config"]).name, "config": str(run.config_path),
            "checkpoint": str(checkpoints[run.key]), "checkpoint_sha256": sha256_file(checkpoints[run.key]),
            "run_key": run.run_key, **result, **provenance(),
        }
        atomic_write_json(run.record_path, record)
        _log(f"{run.variant['key']} seed {run.seed}: kNN top-1 {100 * result['knn_top1']:.2f}%, "
             f"mean max prob {result['flatness_max_prob']:.5f} -> {run.record_path}")
    eval_seconds = time.time() - t_eval

    wanted = {run.record_path for run in runs}
    records = [_read_record(p) for p in sorted(wanted)]
    source = f"mixbench ablation {cfg['_path']}"
    tables = write_tables(records, Path(cfg["results_dir"]), [v["key"] for v in cfg["variants"]], source)
    seconds = time.time() - t0
    print(Path(tables["md"]).read_text())
    _log(f"{len(todo)} run(s) trained and evaluated, {len(runs) - len(todo)} reused; pretraining "
         f"{train_seconds:.0f} s, evaluation {eval_seconds:.0f} s, total {seconds:.0f} s; "
         f"tables in {cfg['results_dir']}")
    return {"rows": summarize(records, [v["key"] for v in cfg["variants"]]), "tables": tables, "seconds": seconds,
            "trained": len(todo), "reused": len(runs) - len(todo)}
