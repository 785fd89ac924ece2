"""Result tables in the layouts of the paper's Tables 7 and 8, generated from run records only.

Table 7 (VOC): one block per BN mode, columns AP50 and Recall. Table 8 (COCO): one block per detector and BN
mode; RetinaNet box AP/AP50/AP75/APs/APm/APl, Mask R-CNN box and mask AP/AP50/AP75. One row per pre-trained
checkpoint and setting; its records of different seeds are one row: each cell is the mean ± sample s.d. over the
seeds that finished (a single run is a single value), with n stated. Values in percent (mmdet reports fractions).
Every block states the protocol it was measured with (from the records' resolved settings) and the VOC blocks the
Recall definition; rows measured under different protocols never share a block. Seeds left out (diverged, failed)
and seeds missing from a row are named under the block. With a baseline, each other row's paired difference to
it (:mod:`mixbench.transfer.stats`) is shown. With ``paper=True`` the paper's published rows
(``transfer.paper_results``) are added, marked ``paper`` in the source column: in the block of measured rows that
followed the paper's protocol (R50-FPN, full scale, 12 epochs), otherwise in a block of their own.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mixbench.transfer.paper_results import PAPER_PROTOCOL, PAPER_ROWS
from mixbench.transfer.stats import LEVEL, PairedDifference, mean_sd, paired_difference

RECALL_DEFINITION = (
    "Recall: mean over classes with ground truth of the fraction of ground-truth boxes matched at IoU 0.5 "
    "by all detections (last point of mmdet eval_map's per-class recall curve); difficult boxes excluded."
)

# detector -> [(column, record metric key)]; record keys are mmengine's evaluator outputs.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "Faster R-CNN": [("AP50", "pascal_voc/AP50"), ("Recall", "pascal_voc/recall")],
    "RetinaNet": [("AP", "coco/bbox_mAP"), ("AP50", "coco/bbox_mAP_50"), ("AP75", "coco/bbox_mAP_75"),
                  ("APs", "coco/bbox_mAP_s"), ("APm", "coco/bbox_mAP_m"), ("APl", "coco/bbox_mAP_l")],
    "Mask R-CNN": [("AP^bb", "coco/bbox_mAP"), ("AP50^bb", "coco/bbox_mAP_50"), ("AP75^bb", "coco/bbox_mAP_75"),
                   ("AP^mk", "coco/segm_mAP"), ("AP50^mk", "coco/segm_mAP_50"), ("AP75^mk", "coco/segm_mAP_75")],
}
OPTIONAL_COLUMNS: dict[str, list[tuple[str, str]]] = {"Faster R-CNN": [("AP@[.5:.95]", "pascal_voc/AP")]}
TABLE_OF = {"voc": "7", "coco": "8"}
BN_TITLE = {"finetune": 'BN fine-tuned ("No Freeze")', "frozen": 'BN frozen ("Freeze BN")'}
FORMATS = ("markdown", "csv", "latex")
PAPER_KEY = "\uffff paper"  # the protocol key of a paper-only block: sorts after every measured protocol


@dataclass
class Row:
    """One measured pre-train row: the finished records by seed, and the seeds left out with why."""

    name: str
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    left_out: dict[int, str] = field(default_factory=dict)
    superseded: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(sorted(self.runs))

    @property
    def attempted(self) -> set[int]:
        return set(self.runs) | set(self.left_out)

    def values(self, key: str) -> dict[int, float]:
        """``{seed: value in percent}`` of one metric over the finished seeds that report it."""
        return {s: 100.0 * float(r["metrics"][key]) for s, r in sorted(self.runs.items()) if key in r["metrics"]}


def protocol(settings: dict[str, Any]) -> str:
    """One line saying how a record was produced, from its resolved config settings."""
    s = settings
    w, h = s["train_scale"]
    tw, th = s["test_scale"]
    scale = f"{w}x{h}" if (w, h) == (tw, th) else f"train {w}x{h}, test {tw}x{th}"
    return (f"{s['detector']} {s['backbone']}-FPN{_width(s)} ({_new_layer_norms(s)}), backbone BN {s['bn_mode']} "
            f"({s['norm_type']}){_frozen_layers(s)}, {' + '.join(s['train_sets'])} -> {s['test_set']}, {scale}, "
            f"{s['epochs']} epoch{'' if s['epochs'] == 1 else 's'}, lr {s['lr']:g}, "
            f"batch {s['batch_per_process']}x{s['world_size']}, "
            f"data {s['data_root']}")


def _frozen_layers(settings: dict[str, Any]) -> str:
    """Which backbone layers train does not update (mmdet's ``frozen_stages``): the paper fine-tunes them all (-1)."""
    k = settings.get("frozen_stages", -1)
    if k < 0:
        return ""
    if k == 0:
        return ", stem frozen"
    return f", stem and stage{'s 1-' if k > 1 else ' '}{k} frozen"


def _width(settings: dict[str, Any]) -> str:
    """`` 128-wide`` when the FPN is not the paper's 256 channels wide (the CPU demo); records before it: ''."""
    width = settings.get("fpn_channels") or 256
    return "" if width == 256 else f" {width}-wide"


def _new_layer_norms(settings: dict[str, Any]) -> str:
    """The norm layers of the newly initialised neck and heads, read from the record: the paper has none."""
    norms = {"neck": settings.get("neck_norm"), **(settings.get("head_norms") or {})}
    used = {name: cfg["type"] for name, cfg in norms.items() if cfg}
    if not used:
        return "no norm in neck/heads"
    plain = [name for name, cfg in norms.items() if not cfg]
    return ", ".join([f"{kind} in {name}" for name, kind in used.items()]
                     + ([f"no norm in {'/'.join(plain)}"] if plain else []))


def follows_paper(suite: str, settings: dict[str, Any]) -> bool:
    """Whether a record's resolved settings are the paper's protocol for ``suite`` (backbone, scale, epochs)."""
    return all(settings.get(k) == v or (isinstance(v, list) and list(settings.get(k) or []) == v)
               for k, v in PAPER_PROTOCOL[suite].items())


# ----------------------------------------------------------------------------------------------- grouping
def _row_key(rec: dict[str, Any]) -> tuple[str, ...]:
    """Everything but the seed that sets a run apart: records equal here are one row."""
    dump = functools.partial(json.dumps, sort_keys=True, default=str)
    return (rec["checkpoint"]["name"], str(rec["checkpoint"].get("sha256")), rec["config"]["name"],
            dump(rec["config"]["settings"]), dump(rec["config"].get("cfg_options") or {}),
            str((rec.get("precision") or {}).get("precision")))


def _make_row(name: str, recs: list[dict[str, Any]]) -> Row:
    """One row from its records; of two records of one seed (the settings stayed, the run key changed, e.g. an
    edited hook) the newer is used and the older named."""
    row = Row(name)
    newest: dict[int, dict[str, Any]] = {}
    for rec in sorted(recs, key=lambda r: str(r.get("finished") or "")):
        if rec["seed"] in newest:
            row.superseded.append(f"{name} seed {rec['seed']} (run {newest[rec['seed']]['run_key_id']})")
        newest[rec["seed"]] = rec
    for seed, rec in sorted(newest.items()):
        if rec["status"] == "complete":
            row.runs[seed] = rec
        else:
            row.left_out[seed] = f"status {rec['status']}: {rec.get('invalid_reason') or 'not finished'}"
    return row


def _group(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str, str], list[Row]]:
    """Records -> {(suite, detector, BN mode, protocol): rows sorted by name}."""
    by_row: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, Any]]] = {}
    for rec in records:
        if rec["detector"] not in COLUMNS:
            raise ValueError(f"no table layout for detector {rec['detector']!r} (known: {sorted(COLUMNS)})")
        block = (rec["suite"], rec["detector"], rec["bn_mode"], protocol(rec["config"]["settings"]))
        by_row.setdefault((block, _row_key(rec)), []).append(rec)
    blocks: dict[tuple[str, str, str, str], list[Row]] = {}
    for (block, key), recs in sorted(by_row.items(), key=lambda kv: kv[0][1]):
        blocks.setdefault(block, []).append(_make_row(key[0], recs))
    for rows in blocks.values():  # rows of one name that differ in more than the seed: numbered, never merged
        names = [r.name for r in rows]
        for name in {n for n in names if names.count(n) > 1}:
            for i, row in enumerate([r for r in rows if r.name == name]):
                row.name = f"{name} [{i + 1}]"
    return blocks


# ----------------------------------------------------------------------------------------------- cells and notes
def cell(values: dict[int, float]) -> str:
    """``mean ± s.d.`` over seeds; one run: its value alone; none: ``—``."""
    if not values:
        return "—"
    mean, sd = mean_sd(list(values.values()))
    return f"{mean:.1f}" if sd is None else f"{mean:.1f} ± {sd:.1f}"


def diff_cell(d: PairedDifference) -> str:
    """``+3.0 [+1.2, +4.8] *``: paired mean difference, its interval, a mark where the interval excludes 0."""
    if d.mean is None:
        return "no shared seed"
    if d.low is None:
        return f"{d.mean:+.1f} (1 shared seed: no interval)"
    return f"{d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}]" + (" *" if d.excludes_zero else "")


def _seeds_text(seeds: Iterable[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) == 1:
        return f"n = 1 (seed {seeds[0]}): single runs, no spread"
    return f"n = {len(seeds)} seeds ({', '.join(map(str, seeds))}) per row; cells are mean ± sample s.d."


def diff_rule(baseline: str) -> str:
    pct = round(100 * LEVEL)
    return (f"Δ vs {baseline}: mean over the seeds both rows share of (row - {baseline}) per seed, in points; "
            f"[low, high]: its {pct}% t-interval Δ ± t({(1 + LEVEL) / 2:g}, n - 1) · s / √n, s the sample s.d. "
            "of the paired differences; * where the interval excludes 0. Fewer than 2 shared seeds: no interval.")


def _seed_notes(rows: list[Row]) -> list[str]:
    """Seeds left out of the mean, superseded records and missing seeds, each named."""
    notes = []
    every = set().union(*(r.attempted for r in rows)) if rows else set()
    left = [f"{r.name} seed {s} ({why})" for r in rows if r.runs for s, why in sorted(r.left_out.items())]
    unshown = [f"{r.name} seed {s} ({why})" for r in rows if not r.runs for s, why in sorted(r.left_out.items())]
    missing = [f"{r.name} seed {s}" for r in rows if r.runs for s in sorted(every - r.attempted)]
    superseded = [s for r in rows for s in r.superseded]
    if left:
        notes.append("Left out of the mean (no valid measurement): " + "; ".join(left) + ".")
    if unshown:
        notes.append("Not shown (no valid measurement): " + "; ".join(unshown) + ".")
    if missing:
        notes.append("Missing (no record; n lowered, nothing filled in): " + "; ".join(missing) + ".")
    if superseded:
        notes.append("Replaced by a newer record of the same seed and settings: " + "; ".join(superseded) + ".")
    return notes


# ----------------------------------------------------------------------------------------------- blocks
def build_blocks(records: Iterable[dict[str, Any]], paper: bool = False,
                 baseline: str | None = None) -> list[dict[str, Any]]:
    """Group records into table blocks (one per suite, detector, BN mode and protocol), rows sorted by checkpoint.

    Returns a list of dicts with ``title``, ``table`` ('7'|'8'), ``protocols`` (list of str), ``notes`` (above the
    table), ``headers`` and ``rows`` (lists of cell strings), ``below`` (seeds left out, missing or replaced: under
    the table), ``columns`` ([(header, metric key)]), ``measured`` (the :class:`Row` objects shown), ``paper``
    (paper rows), and with a baseline ``diff_headers``/``diff_rows``/``diffs``/``diff_rule``, in the order Table 7
    then Table 8.
    """
    blocks = {key: {"measured": rows, "paper": [], "protocols": [key[3]]} for key, rows in _group(records).items()}
    if paper:
        _add_paper_rows(blocks)
    order = sorted(blocks.items(), key=lambda kv: (TABLE_OF[kv[0][0]], kv[0][1], kv[0][2] != "finetune", kv[0][3]))
    return [_finish(key, b, baseline) for key, b in order]


def _add_paper_rows(blocks: dict[tuple[str, str, str, str], dict[str, Any]]) -> None:
    for row in PAPER_ROWS:
        same = [k for k, b in blocks.items() if k[:3] == (row["suite"], row["detector"], row["bn_mode"])
                and any(follows_paper(k[0], rec["config"]["settings"]) for r in b["measured"]
                        for rec in r.runs.values())]
        key = same[0] if same else (row["suite"], row["detector"], row["bn_mode"], PAPER_KEY)
        b = blocks.setdefault(key, {"measured": [], "paper": [], "protocols": []})
        b["paper"].append(row)
        if row["protocol"] not in b["protocols"]:
            b["protocols"].append(row["protocol"])


def _finish(key: tuple[str, str, str, str], b: dict[str, Any], baseline: str | None) -> dict[str, Any]:
    """A block's headers, cell rows, protocol lines (with n) and notes."""
    suite, detector, bn_mode, proto = key
    shown = [r for r in b["measured"] if r.runs]
    cols = list(COLUMNS[detector]) + [c for c in OPTIONAL_COLUMNS.get(detector, [])
                                      if any(r.values(c[1]) for r in shown)]
    same_seeds = len({r.seeds for r in shown}) <= 1
    protocols = [f"{p}; {_seeds_text(shown[0].seeds)}" if p == proto and shown and same_seeds else p
                 for p in b["protocols"]]
    per_row_n = [] if same_seeds else ["n (seeds)"]
    headers = ["pre-train", *[c for c, _ in cols], *per_row_n, "source"]
    rows = [[r.name, *[cell(r.values(k)) for _, k in cols],
             *([f"{len(r.seeds)} ({', '.join(map(str, r.seeds))})"] if per_row_n else []), "measured"]
            for r in shown]
    rows += [[p["pretrain"], *[_paper_value(p["metrics"].get(c)) for c, _ in cols], *["—" for _ in per_row_n],
              f"paper (Table {p['source_table']})"] for p in b["paper"]]
    notes = [RECALL_DEFINITION] if suite == "voc" else []
    notes.append("Values in percent; measured rows come from mmdet evaluations stored in run records." if shown else
                 "Values in percent, as published; no measured run followed the paper's protocol.")
    title = (f"Table {TABLE_OF[suite]} layout: {detector}, {'PASCAL VOC' if suite == 'voc' else 'COCO'}, "
             f"{BN_TITLE.get(bn_mode, bn_mode)}" + ("" if b["measured"] else " (paper)"))
    out = {"title": title, "table": TABLE_OF[suite], "suite": suite, "detector": detector, "bn_mode": bn_mode,
           "protocols": protocols, "notes": notes, "headers": headers, "rows": rows, "columns": cols,
           "below": _seed_notes(b["measured"]), "measured": shown, "paper": b["paper"]}
    if baseline is not None and shown:
        _add_differences(out, baseline)
    return out


def _paper_value(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def _add_differences(block: dict[str, Any], baseline: str) -> None:
    """Each other row's paired difference to the baseline row, per metric, and the rule that computed it."""
    base = [r for r in block["measured"] if r.name == baseline]
    if not base:
        block["below"].append(f"No row named {baseline!r} in this block: no differences shown.")
        return
    cols = block["columns"]
    diffs = {r.name: {c: paired_difference(r.values(k), base[0].values(k)) for c, k in cols}
             for r in block["measured"] if r is not base[0]}
    block["diffs"] = diffs
    block["diff_headers"] = [f"pre-train - {baseline}", *[f"Δ {c}" for c, _ in cols], "shared seeds"]
    block["diff_rows"] = [[name, *[diff_cell(d[c]) for c, _ in cols],
                           ", ".join(map(str, sorted(set().union(*(x.seeds for x in d.values()))))) or "—"]
                          for name, d in diffs.items()]
    block["diff_rule"] = diff_rule(baseline)


# ----------------------------------------------------------------------------------------------- rendering
def render(blocks: list[dict[str, Any]], fmt: str = "markdown", skipped: Iterable[tuple[Any, str]] = ()) -> str:
    """Render blocks as Markdown (tabulate 'github'), CSV (one flat file, :func:`render_csv`) or LaTeX (tabulate
    'latex_booktabs', ``\\pm`` for ±). Markdown and LaTeX name the ``skipped`` files (path, why) at the end."""
    from tabulate import tabulate

    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {FORMATS}")
    if fmt == "csv":
        return render_csv(blocks)
    style, lead = ("github", "") if fmt == "markdown" else ("latex_booktabs", "% ")
    end = "  " if fmt == "markdown" else ""

    def table(rows: list[list[str]], headers: list[str]) -> str:
        text = tabulate(rows, headers=headers, tablefmt=style, disable_numparse=True)
        return text if fmt == "markdown" else text.replace(" ± ", r" $\pm$ ").replace("Δ", r"$\Delta$")

    parts = []
    for b in blocks:
        lines = [f"### {b['title']}", ""] if fmt == "markdown" else [f"% {b['title']}"]
        lines += [f"{lead}Protocol: {p}{end}" for p in b["protocols"]]
        lines += [f"{lead}{n}{end}" for n in b["notes"]]
        lines += [""] if fmt == "markdown" else []
        lines.append(table(b["rows"], b["headers"]))
        lines += ([""] if fmt == "markdown" and b["below"] else []) + [f"{lead}{n}{end}" for n in b["below"]]
        if b.get("diff_rows"):
            lines += ["", "Paired differences (points):", ""] if fmt == "markdown" else [
                f"{lead}Paired differences (points):"]
            lines += [table(b["diff_rows"], b["diff_headers"]), *([""] if fmt == "markdown" else []),
                      f"{lead}{b['diff_rule']}"]
        parts.append("\n".join([*lines, ""]))
    skipped = list(skipped)
    if skipped:
        parts.append(f"{lead}Skipped (not valid run records): "
                     + "; ".join(f"{path} ({why})" for path, why in skipped) + "\n")
    return "\n".join(parts)


def _num(value: float | None) -> str:
    return "" if value is None else repr(round(value, 4))


def _metric_cells(row: Row, key: str, diff: PairedDifference | None) -> list[str]:
    """CSV cells of one metric of a measured row: mean, s.d., n, per-seed values, and the paired difference."""
    values = row.values(key)
    mean, sd = mean_sd(list(values.values())) if values else (None, None)
    cells = [_num(mean), _num(sd), str(len(values)), ";".join(f"{s}:{_num(v)}" for s, v in values.items())]
    if diff is not None:
        cells += [_num(diff.mean), _num(diff.low), _num(diff.high), str(diff.n)]
    return cells


def render_csv(blocks: list[dict[str, Any]]) -> str:
    """One line per row; per metric M: ``M`` (mean), ``M sd``, ``M n``, ``M per seed`` (``seed:value;...``) and,
    with a baseline, ``M diff``, ``M diff low``, ``M diff high``, ``M diff n``. Paper rows fill ``M`` only."""
    import csv
    import io

    with_diff = any("diffs" in b for b in blocks)
    metrics: list[str] = []
    for b in blocks:
        metrics += [c for c, _ in b["columns"] if c not in metrics]
    per_metric = ["", " sd", " n", " per seed"] + ([" diff", " diff low", " diff high", " diff n"] if with_diff else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["table", "detector", "bn_mode", "pre-train", "source", "n", "seeds",
                     *[m + s for m in metrics for s in per_metric], "protocol"])
    for b in blocks:
        proto, keys = " | ".join(b["protocols"]), dict(b["columns"])
        head = [b["table"], b["detector"], b["bn_mode"]]
        for row in b["measured"]:
            diffs = b.get("diffs", {}).get(row.name)
            blank = [""] * len(per_metric)
            cells = {m: (_metric_cells(row, keys[m], diffs[m] if diffs else None) + blank)[:len(blank)] for m in keys}
            writer.writerow([*head, row.name, "measured", len(row.seeds), " ".join(map(str, row.seeds)),
                             *[c for m in metrics for c in cells.get(m, blank)], proto])
        for p in b["paper"]:
            cells = {m: [_num(p["metrics"].get(m))] + [""] * (len(per_metric) - 1) for m in keys}
            writer.writerow([*head, p["pretrain"], f"paper (Table {p['source_table']})", "", "",
                             *[c for m in metrics for c in cells.get(m, [""] * len(per_metric))], proto])
    return buf.getvalue()
