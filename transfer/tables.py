"""Result tables in the layouts of the paper's Tables 7 and 8, generated from run records only.

Table 7 (VOC): one block per BN mode, columns AP50 and Recall. Table 8 (COCO): one block per detector and BN
mode; RetinaNet box AP/AP50/AP75/APs/APm/APl, Mask R-CNN box and mask AP/AP50/AP75. One row per pre-trained
checkpoint; values in percent (mmdet reports fractions). Every block states the protocol it was measured with
(from the records' resolved settings) and the VOC blocks the Recall definition; rows measured under different
protocols never share a block. With ``paper=True`` the paper's published rows (``transfer.paper_results``) are
added, marked ``paper`` in the source column: in the block of measured rows that followed the paper's protocol
(R50-FPN, full scale, 12 epochs), otherwise in a block of their own (e.g. beside the R18 CPU demo).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

from mixbench.transfer.paper_results import PAPER_PROTOCOL, PAPER_ROWS

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


def protocol(settings: dict[str, Any]) -> str:
    """One line saying how a record was produced, from its resolved config settings."""
    s = settings
    w, h = s["train_scale"]
    tw, th = s["test_scale"]
    scale = f"{w}x{h}" if (w, h) == (tw, th) else f"train {w}x{h}, test {tw}x{th}"
    return (f"{s['detector']} {s['backbone']}-FPN{_width(s)} ({_new_layer_norms(s)}), backbone BN {s['bn_mode']} "
            f"({s['norm_type']}), {' + '.join(s['train_sets'])} -> {s['test_set']}, {scale}, "
            f"{s['epochs']} epoch{'' if s['epochs'] == 1 else 's'}, lr {s['lr']:g}, "
            f"batch {s['batch_per_process']}x{s['world_size']}, "
            f"data {s['data_root']}")


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


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100.0 * float(value):.1f}"


def _paper_value(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def follows_paper(suite: str, settings: dict[str, Any]) -> bool:
    """Whether a record's resolved settings are the paper's protocol for ``suite`` (backbone, scale, epochs)."""
    return all(settings.get(k) == v or (isinstance(v, list) and list(settings.get(k) or []) == v)
               for k, v in PAPER_PROTOCOL[suite].items())


def build_blocks(records: Iterable[dict[str, Any]], paper: bool = False) -> list[dict[str, Any]]:
    """Group records into table blocks (one per suite, detector, BN mode and protocol), rows sorted by checkpoint.

    Returns a list of dicts with ``title``, ``table`` ('7'|'8'), ``protocols`` (list of str), ``notes``,
    ``headers`` and ``rows`` (lists of cell strings), in the order Table 7 then Table 8.
    """
    blocks: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    paper_key = "\uffff paper"  # sorts after every measured protocol of the same table

    def block(suite: str, detector: str, bn_mode: str, proto: str) -> dict[str, Any]:
        key = (suite, detector, bn_mode, proto)
        if key not in blocks:
            if detector not in COLUMNS:
                raise ValueError(f"no table layout for detector {detector!r} (known: {sorted(COLUMNS)})")
            blocks[key] = {"measured": [], "paper": [], "protocols": [] if proto == paper_key else [proto],
                           "follows_paper": False, "left_out": []}
        return blocks[key]

    for rec in records:
        settings = rec["config"]["settings"]
        b = block(rec["suite"], rec["detector"], rec["bn_mode"], protocol(settings))
        if rec.get("status") != "complete":  # a diverged or unfinished run is never shown as measured
            why = rec.get("invalid_reason") or "not finished"
            b["left_out"].append(f"{rec['checkpoint']['name']} (status {rec.get('status')}: {why})")
            continue
        b["measured"].append(rec)
        b["follows_paper"] = follows_paper(rec["suite"], settings)
    if paper:
        for row in PAPER_ROWS:
            same = [k for k, b in blocks.items() if k[:3] == (row["suite"], row["detector"], row["bn_mode"])
                    and b["follows_paper"]]
            b = blocks[same[0]] if same else block(row["suite"], row["detector"], row["bn_mode"], paper_key)
            b["paper"].append(row)
            if row["protocol"] not in b["protocols"]:
                b["protocols"].append(row["protocol"])

    out = []
    order = sorted(blocks.items(), key=lambda kv: (TABLE_OF[kv[0][0]], kv[0][1], kv[0][2] != "finetune", kv[0][3]))
    for (suite, detector, bn_mode, _), b in order:
        cols = list(COLUMNS[detector])
        for name, key in OPTIONAL_COLUMNS.get(detector, []):
            if any(key in r["metrics"] for r in b["measured"]):
                cols.append((name, key))
        headers = ["pre-train", *[c for c, _ in cols], "source"]
        rows = [[r["checkpoint"]["name"], *[_pct(r["metrics"].get(k)) for _, k in cols], "measured"]
                for r in sorted(b["measured"], key=lambda r: r["checkpoint"]["name"])]
        rows += [[p["pretrain"], *[_paper_value(p["metrics"].get(c)) for c, _ in cols],
                  f"paper (Table {p['source_table']})"] for p in b["paper"]]
        table = TABLE_OF[suite]
        dataset = "PASCAL VOC" if suite == "voc" else "COCO"
        notes = [RECALL_DEFINITION] if suite == "voc" else []
        if b["measured"]:
            notes.append("Values in percent; measured rows come from mmdet evaluations stored in run records.")
        else:
            notes.append("Values in percent, as published; no measured run followed the paper's protocol.")
        if b["left_out"]:
            notes.append("Not shown (no valid measurement): " + "; ".join(b["left_out"]) + ".")
        title = f"Table {table} layout: {detector}, {dataset}, {BN_TITLE.get(bn_mode, bn_mode)}"
        out.append({"title": title + ("" if b["measured"] or b["left_out"] else " (paper)"),
                    "table": table, "suite": suite, "detector": detector, "bn_mode": bn_mode,
                    "protocols": b["protocols"], "notes": notes, "headers": headers, "rows": rows})
    return out


def render(blocks: list[dict[str, Any]], fmt: str = "markdown") -> str:
    """Render blocks as Markdown (tabulate 'github'), CSV (one flat file) or LaTeX (tabulate 'latex_booktabs')."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of {FORMATS}")
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        metric_cols: list[str] = []
        for b in blocks:
            metric_cols += [h for h in b["headers"][1:-1] if h not in metric_cols]
        writer.writerow(["table", "detector", "bn_mode", "pre-train", "source", *metric_cols, "protocol"])
        for b in blocks:
            for row in b["rows"]:
                cells = dict(zip(b["headers"], row))
                proto = " | ".join(b["protocols"])
                writer.writerow([b["table"], b["detector"], b["bn_mode"], row[0], row[-1],
                                 *[cells.get(c, "") for c in metric_cols], proto])
        return buf.getvalue()
    parts = []
    for b in blocks:
        body = tabulate(b["rows"], headers=b["headers"], tablefmt="github" if fmt == "markdown" else
                        "latex_booktabs", disable_numparse=True)
        if fmt == "markdown":
            lines = [f"### {b['title']}", ""]
            lines += [f"Protocol: {p}  " for p in b["protocols"]]
            lines += [f"{n}  " for n in b["notes"]]
            parts.append("\n".join([*lines, "", body, ""]))
        else:
            lines = [f"% {b['title']}"] + [f"% Protocol: {p}" for p in b["protocols"]]
            lines += [f"% {n}" for n in b["notes"]]
            parts.append("\n".join([*lines, body, ""]))
    return "\n".join(parts)
