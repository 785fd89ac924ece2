"""Tables from fixed run records: the expected text is computed here from the records, not typed numbers."""

from __future__ import annotations

import csv
import io
import json

import pytest

from mixbench.transfer.paper_results import PAPER_ROWS
from mixbench.transfer.records import SCHEMA, write_record
from mixbench.transfer.tables import RECALL_DEFINITION, build_blocks, render


def settings(detector: str, suite: str, bn: str) -> dict:
    return {"detector": detector, "suite": suite, "backbone": "R18", "bn_mode": bn, "norm_type": "BN",
            "train_scale": [224, 160], "test_scale": [224, 160],
            "train_sets": ["VOC2007 trainval", "VOC2012 trainval"] if suite == "voc" else ["train2017"],
            "test_set": "VOC2007 test" if suite == "voc" else "val2017", "epochs": 2, "lr": 0.01,
            "batch_per_process": 2, "world_size": 1, "data_root": f"data/demo/{suite}/"}


def record(name: str, detector: str, suite: str, bn: str, metrics: dict) -> dict:
    return {"schema": SCHEMA, "status": "complete", "checkpoint": {"name": name, "sha256": None},
            "config": {"name": f"{detector}-{bn}", "settings": settings(detector, suite, bn)},
            "suite": suite, "detector": detector, "bn_mode": bn, "metrics": metrics}


RECORDS = [
    record("moco", "Faster R-CNN", "voc", "frozen", {"pascal_voc/AP50": 0.4213, "pascal_voc/recall": 0.7789}),
    record("moco+mix", "Faster R-CNN", "voc", "frozen", {"pascal_voc/AP50": 0.4551, "pascal_voc/recall": 0.80}),
    record("random", "Faster R-CNN", "voc", "finetune", {"pascal_voc/AP50": 0.101, "pascal_voc/recall": 0.333}),
    record("moco", "RetinaNet", "coco", "frozen",
           {f"coco/bbox_mAP{s}": 0.1 + i / 100 for i, s in enumerate(["", "_50", "_75", "_s", "_m", "_l"])}),
    record("moco", "Mask R-CNN", "coco", "frozen",
           {**{f"coco/bbox_mAP{s}": 0.2 + i / 100 for i, s in enumerate(["", "_50", "_75"])},
            **{f"coco/segm_mAP{s}": 0.3 + i / 100 for i, s in enumerate(["", "_50", "_75"])}}),
]
COLS = {"Faster R-CNN": ["pascal_voc/AP50", "pascal_voc/recall"],
        "RetinaNet": [f"coco/bbox_mAP{s}" for s in ["", "_50", "_75", "_s", "_m", "_l"]],
        "Mask R-CNN": [f"coco/{t}_mAP{s}" for t in ("bbox", "segm") for s in ["", "_50", "_75"]]}


def expected_row(rec: dict) -> list[str]:
    return [rec["checkpoint"]["name"], *[f"{100 * rec['metrics'][k]:.1f}" for k in COLS[rec["detector"]]],
            "measured"]


def test_blocks_follow_tables_7_and_8():
    blocks = build_blocks(RECORDS)
    keys = [(b["table"], b["detector"], b["bn_mode"]) for b in blocks]
    assert keys == [("7", "Faster R-CNN", "finetune"), ("7", "Faster R-CNN", "frozen"),
                    ("8", "Mask R-CNN", "frozen"), ("8", "RetinaNet", "frozen")]
    for b in blocks:
        recs = sorted((r for r in RECORDS if (r["detector"], r["bn_mode"]) == (b["detector"], b["bn_mode"])),
                      key=lambda r: r["checkpoint"]["name"])
        assert b["rows"] == [expected_row(r) for r in recs]
        assert len(b["protocols"]) == 1 and recs[0]["config"]["settings"]["test_set"] in b["protocols"][0]
    assert blocks[0]["headers"] == ["pre-train", "AP50", "Recall", "source"]
    assert blocks[2]["headers"][1:7] == ["AP^bb", "AP50^bb", "AP75^bb", "AP^mk", "AP50^mk", "AP75^mk"]


def test_markdown_states_protocol_and_recall_definition():
    text = render(build_blocks(RECORDS), "markdown")
    table_lines = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
                   if line.startswith("|")]
    for rec in RECORDS:
        assert expected_row(rec) in table_lines
    assert text.count(RECALL_DEFINITION) == 2  # once per VOC block
    assert text.count("Protocol: ") == 4 and "224x160" in text and "R18-FPN" in text


def test_paper_rows_marked_paper():
    blocks = build_blocks(RECORDS, paper=True)
    paper_rows = [row for b in blocks for row in b["rows"] if row[-1].startswith("paper")]
    assert len(paper_rows) == len(PAPER_ROWS)
    moco_7b = next(p for p in PAPER_ROWS if p["source_table"] == "7b" and p["pretrain"] == "MoCo")
    assert [moco_7b["pretrain"], f"{moco_7b['metrics']['AP50']:.1f}", f"{moco_7b['metrics']['Recall']:.1f}",
            "paper (Table 7b)"] in [r for b in blocks for r in b["rows"]]
    assert all(row[-1] == "measured" for b in build_blocks(RECORDS) for row in b["rows"])


def test_csv_and_latex():
    rows = list(csv.DictReader(io.StringIO(render(build_blocks(RECORDS), "csv"))))
    assert len(rows) == len(RECORDS)
    voc = next(r for r in rows if r["pre-train"] == "moco+mix")
    assert voc["AP50"] == f"{100 * 0.4551:.1f}" and voc["Recall"] == f"{100 * 0.80:.1f}" and voc["source"] == "measured"
    latex = render(build_blocks(RECORDS), "latex")
    assert "\\toprule" in latex and "% Protocol:" in latex
    with pytest.raises(ValueError, match="unknown table format"):
        render(build_blocks(RECORDS), "html")


def test_table_command_reads_record_files(tmp_path, capsys):
    from mixbench.cli import main

    for i, rec in enumerate(RECORDS):
        write_record(tmp_path / "records" / f"{i}.json", rec)
    out = tmp_path / "t.md"
    assert main(["table", str(tmp_path / "records"), "--out", str(out)]) == 0
    text = out.read_text()
    assert text in capsys.readouterr().out and "moco+mix" in text
    (tmp_path / "bad.json").write_text(json.dumps({"schema": "other"}))
    assert main(["table", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not a mixbench transfer run record" in capsys.readouterr().err


def test_paper_rows_share_a_block_only_with_runs_of_the_paper_protocol():
    demo = RECORDS[0]  # R18, 224x160, 2 epochs: not the paper's protocol
    full = json.loads(json.dumps(demo))
    full["checkpoint"]["name"] = "moco-r50"
    full["config"]["settings"].update(backbone="R50", train_scale=[1000, 600], test_scale=[1000, 600], epochs=12)
    n_paper = sum(1 for r in PAPER_ROWS if (r["suite"], r["detector"], r["bn_mode"]) == ("voc", "Faster R-CNN",
                                                                                      "frozen"))
    blocks = [b for b in build_blocks([demo, full], paper=True) if (b["detector"], b["bn_mode"]) ==
              ("Faster R-CNN", "frozen")]
    assert len(blocks) == 2  # the demo run alone; the paper-protocol run beside the paper's rows
    by_first = {b["rows"][0][0]: b for b in blocks}
    assert [r[-1] for r in by_first["moco"]["rows"]] == ["measured"]
    full_rows = by_first["moco-r50"]["rows"]
    assert full_rows[0][-1] == "measured" and sum(r[-1].startswith("paper") for r in full_rows) == n_paper

    alone = [b for b in build_blocks([demo], paper=True) if b["detector"] == "Faster R-CNN" and
             b["bn_mode"] == "frozen"]
    assert len(alone) == 2 and alone[1]["title"].endswith("(paper)")
    assert all(r[-1] == "measured" for r in alone[0]["rows"])
    assert all(r[-1].startswith("paper") for r in alone[1]["rows"]) and len(alone[1]["rows"]) == n_paper


def test_a_diverged_run_is_never_shown_as_measured():
    """Issue 12 finding 3: a diverged transfer's record used to appear in the table as a measured 0.0."""
    bad = record("moco+lr1e6", "Faster R-CNN", "voc", "frozen", {"pascal_voc/AP50": float("nan"),
                                                                 "pascal_voc/recall": 0.0})
    bad.update(status="invalid", invalid_reason="non-finite metrics ['pascal_voc/AP50']: the run diverged")
    (b,) = [b for b in build_blocks([*RECORDS, bad]) if b["suite"] == "voc" and b["bn_mode"] == "frozen"]
    assert [r[0] for r in b["rows"]] == ["moco", "moco+mix"]
    assert any("Not shown (no valid measurement): moco+lr1e6 (status invalid: non-finite" in n for n in b["notes"])
    assert "moco+lr1e6" not in render([b], "csv")


def test_protocol_line_states_the_new_layers_norms_and_width_from_the_record():
    from mixbench.transfer.tables import protocol

    paper = settings("RetinaNet", "coco", "frozen")  # records without the keys: the paper's no-norm 256-wide FPN
    assert protocol(paper).startswith("RetinaNet R18-FPN (no norm in neck/heads), backbone BN frozen")
    demo = dict(paper, fpn_channels=128, neck_norm=None,
                head_norms={"bbox_head": {"type": "GN", "num_groups": 32, "requires_grad": True}})
    assert protocol(demo).startswith("RetinaNet R18-FPN 128-wide (GN in bbox_head, no norm in neck), backbone BN")
    rcnn = dict(paper, fpn_channels=256, neck_norm=None, head_norms={"rpn_head": None, "roi_head.bbox_head": None})
    assert "-FPN (no norm in neck/heads)" in protocol(rcnn)
