"""Tables from fixed run records: expected text computed here from the records or by hand, not copied output."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from mixbench.base.runkey import key_id
from mixbench.transfer.paper_results import PAPER_ROWS
from mixbench.transfer.records import SCHEMA, record_path, write_record
from mixbench.transfer.stats import mean_sd, paired_difference
from mixbench.transfer.tables import RECALL_DEFINITION, build_blocks, render

T_975_2 = 4.303  # Student t, 97.5% quantile, 2 degrees of freedom (printed tables)


def settings(detector: str, suite: str, bn: str) -> dict:
    return {"detector": detector, "suite": suite, "backbone": "R18", "bn_mode": bn, "norm_type": "BN",
            "train_scale": [224, 160], "test_scale": [224, 160],
            "train_sets": ["VOC2007 trainval", "VOC2012 trainval"] if suite == "voc" else ["train2017"],
            "test_set": "VOC2007 test" if suite == "voc" else "val2017", "epochs": 2, "lr": 0.01,
            "batch_per_process": 2, "world_size": 1, "data_root": f"data/demo/{suite}/"}


def record(name: str, detector: str, suite: str, bn: str, metrics: dict, seed: int = 0, **extra) -> dict:
    key = {"checkpoint_sha256": None, "config": f"{detector}-{bn}", "config_sha256": f"{name}{seed}", "seed": seed}
    return {"schema": SCHEMA, "status": "complete", "checkpoint": {"name": name, "sha256": None},
            "config": {"name": f"{detector}-{bn}", "settings": settings(detector, suite, bn)},
            "suite": suite, "detector": detector, "bn_mode": bn, "metrics": metrics, "seed": seed,
            "run_key": key, "run_key_id": key_id(key), **extra}


def voc(name: str, seed: int, ap50: float, recall: float, **extra) -> dict:
    return record(name, "Faster R-CNN", "voc", "frozen", {"pascal_voc/AP50": ap50, "pascal_voc/recall": recall},
                  seed=seed, **extra)


def diverged(name: str, seed: int) -> dict:
    return voc(name, seed, float("nan"), 0.0, status="invalid",
               invalid_reason="non-finite metrics ['pascal_voc/AP50']: the run diverged")


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
# Three seeds per row, values chosen so that the statistics are easy by hand (see each test).
SEEDS3 = [voc("moco", 0, 0.30, 0.52), voc("moco", 1, 0.36, 0.58), voc("moco", 2, 0.33, 0.73),
          voc("random", 0, 0.10, 0.50), voc("random", 1, 0.14, 0.60), voc("random", 2, 0.12, 0.70)]


def expected_row(rec: dict) -> list[str]:
    return [rec["checkpoint"]["name"], *[f"{100 * rec['metrics'][k]:.1f}" for k in COLS[rec["detector"]]],
            "measured"]


def only_block(records: list[dict], **kw) -> dict:
    (b,) = build_blocks(records, **kw)
    return b


def table_lines(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]


def test_blocks_follow_tables_7_and_8():
    blocks = build_blocks(RECORDS)
    keys = [(b["table"], b["detector"], b["bn_mode"]) for b in blocks]
    assert keys == [("7", "Faster R-CNN", "finetune"), ("7", "Faster R-CNN", "frozen"),
                    ("8", "Mask R-CNN", "frozen"), ("8", "RetinaNet", "frozen")]
    for b in blocks:
        recs = sorted((r for r in RECORDS if (r["detector"], r["bn_mode"]) == (b["detector"], b["bn_mode"])),
                      key=lambda r: r["checkpoint"]["name"])
        assert b["rows"] == [expected_row(r) for r in recs]  # one run: its value alone, no spread
        assert len(b["protocols"]) == 1 and recs[0]["config"]["settings"]["test_set"] in b["protocols"][0]
        assert b["protocols"][0].endswith("n = 1 (seed 0): single runs, no spread")
    assert blocks[0]["headers"] == ["pre-train", "AP50", "Recall", "source"]
    assert blocks[2]["headers"][1:7] == ["AP^bb", "AP50^bb", "AP75^bb", "AP^mk", "AP50^mk", "AP75^mk"]


def test_seeds_of_one_row_become_mean_and_sample_sd():
    # moco AP50 30, 36, 33: mean 33.0, s.d. sqrt((9 + 9 + 0) / 2) = 3.0; recall 52, 58, 73: mean 61.0,
    # s.d. sqrt((81 + 9 + 144) / 2) = sqrt(117) = 10.8.
    # random AP50 10, 14, 12: 12.0 ± 2.0; recall 50, 60, 70: 60.0 ± 10.0
    b = only_block(SEEDS3)
    assert b["rows"] == [["moco", "33.0 ± 3.0", "61.0 ± 10.8", "measured"],
                         ["random", "12.0 ± 2.0", "60.0 ± 10.0", "measured"]]
    assert b["protocols"][0].endswith("n = 3 seeds (0, 1, 2) per row; cells are mean ± sample s.d.")
    assert mean_sd([30.0, 34.0, 32.0]) == (32.0, 2.0)


def test_invalid_seed_left_out_and_missing_seed_named():
    # moco seed 1 diverged: mean over seeds 0 and 2 only, AP50 30, 33 -> 31.5, s.d. sqrt(2 * 1.5^2) = 2.1;
    # random seed 2 never ran: seeds 0 and 1, AP50 10, 14 -> 12.0, s.d. sqrt(2 * 2^2) = 2.8.
    records = [SEEDS3[0], diverged("moco", 1), SEEDS3[2], SEEDS3[3], SEEDS3[4]]
    b = only_block(records)
    assert b["headers"] == ["pre-train", "AP50", "Recall", "n (seeds)", "source"]
    assert b["rows"] == [["moco", "31.5 ± 2.1", "62.5 ± 14.8", "2 (0, 2)", "measured"],
                         ["random", "12.0 ± 2.8", "55.0 ± 7.1", "2 (0, 1)", "measured"]]
    assert "n = " not in b["protocols"][0]  # n differs between rows: stated per row
    notes = " ".join(b["below"])
    assert ("Left out of the mean (no valid measurement): moco seed 1 (status invalid: non-finite metrics "
            "['pascal_voc/AP50']: the run diverged).") in notes
    assert "Missing (no record; n lowered, nothing filled in): random seed 2." in notes
    assert "moco seed" not in notes.split("Missing")[1] and "random seed 2 (" not in notes


def test_a_row_without_any_valid_seed_is_never_shown_as_measured():
    b = only_block([*SEEDS3[:3], diverged("moco+lr1e6", 0)])
    assert [r[0] for r in b["rows"]] == ["moco"]
    assert any(n.startswith("Not shown (no valid measurement): moco+lr1e6 seed 0 (status invalid: non-finite")
               for n in b["below"])
    assert "moco+lr1e6" not in render([b], "csv")
    assert not any("Missing" in n for n in b["below"])


def test_rows_that_differ_in_more_than_the_seed_stay_apart():
    other = voc("moco", 0, 0.20, 0.5)
    other["checkpoint"]["sha256"] = "f" * 64  # same name, another file
    b = only_block([SEEDS3[0], SEEDS3[1], other])
    assert [r[0] for r in b["rows"]] == ["moco [1]", "moco [2]"]
    assert sorted(r[1] for r in b["rows"]) == ["20.0", "33.0 ± 4.2"]


def test_paired_difference_matches_hand_computation():
    # moco - random per seed, AP50: 20, 22, 21 -> mean 21, s_d 1, half width 4.303 / sqrt(3) = 2.484
    d = paired_difference({0: 30.0, 1: 36.0, 2: 33.0}, {0: 10.0, 1: 14.0, 2: 12.0})
    assert d.seeds == (0, 1, 2) and d.mean == pytest.approx(21.0)
    assert (d.low, d.high) == pytest.approx((21 - T_975_2 / math.sqrt(3), 21 + T_975_2 / math.sqrt(3)), abs=1e-3)
    assert d.excludes_zero
    # recall: 2, -2, 3 -> mean 1, s_d sqrt((1 + 9 + 4) / 2) = sqrt(7), half 4.303 * sqrt(7) / sqrt(3) = 6.573
    d = paired_difference({0: 52.0, 1: 58.0, 2: 73.0}, {0: 50.0, 1: 60.0, 2: 70.0})
    assert (d.mean, d.low, d.high) == pytest.approx((1.0, 1 - 6.573, 1 + 6.573), abs=1e-3)
    assert not d.excludes_zero
    one = paired_difference({0: 30.0, 5: 1.0}, {0: 10.0, 1: 14.0})
    assert (one.mean, one.low, one.high, one.seeds) == (20.0, None, None, (0,))


def test_baseline_rows_show_paired_differences_and_the_rule():
    mix = voc("moco+mix", 0, 0.40, 0.55)  # shares one seed with random: no interval
    b = only_block([*SEEDS3, mix], baseline="random")
    assert b["diff_headers"] == ["pre-train - random", "Δ AP50", "Δ Recall", "shared seeds"]
    assert b["diff_rows"] == [["moco", "+21.0 [+18.5, +23.5] *", "+1.0 [-5.6, +7.6]", "0, 1, 2"],
                              ["moco+mix", "+30.0 (1 shared seed: no interval)",
                               "+5.0 (1 shared seed: no interval)", "0"]]
    rule = b["diff_rule"]
    assert rule.startswith("Δ vs random")
    assert "95% t-interval" in rule and "excludes 0" in rule and "Fewer than 2 shared seeds: no interval" in rule
    text = render([b], "markdown")
    assert ["moco", "+21.0 [+18.5, +23.5] *", "+1.0 [-5.6, +7.6]", "0, 1, 2"] in table_lines(text)
    assert "Missing (no record; n lowered, nothing filled in): moco+mix seed 1; moco+mix seed 2." in text
    assert text.index("Missing") < text.index("Paired differences") < text.index("Δ vs random")  # under the tables
    assert "No row named 'moco-v9'" in " ".join(only_block(SEEDS3, baseline="moco-v9")["below"])


def test_markdown_states_protocol_and_recall_definition():
    text = render(build_blocks(RECORDS), "markdown")
    for rec in RECORDS:
        assert expected_row(rec) in table_lines(text)
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


def test_csv_carries_mean_sd_n_and_every_seed():
    rows = list(csv.DictReader(io.StringIO(render(build_blocks([*SEEDS3, *RECORDS[2:]], paper=True), "csv"))))
    moco = next(r for r in rows if r["pre-train"] == "moco" and r["detector"] == "Faster R-CNN")
    assert (moco["AP50"], moco["AP50 sd"], moco["AP50 n"]) == ("33.0", "3.0", "3")
    assert moco["AP50 per seed"] == "0:30.0;1:36.0;2:33.0" and moco["Recall per seed"] == "0:52.0;1:58.0;2:73.0"
    assert (moco["n"], moco["seeds"], moco["source"]) == ("3", "0 1 2", "measured")
    single = next(r for r in rows if r["pre-train"] == "random" and r["bn_mode"] == "finetune")
    assert (single["AP50"], single["AP50 sd"], single["AP50 n"]) == ("10.1", "", "1")  # one run: no spread
    paper = next(r for r in rows if r["source"] == "paper (Table 7b)" and r["pre-train"] == "MoCo")
    assert paper["AP50"] == "72.7" and paper["AP50 sd"] == "" and paper["n"] == ""
    assert "AP50 diff" not in rows[0]
    with_diff = list(csv.DictReader(io.StringIO(render(build_blocks(SEEDS3, baseline="random"), "csv"))))
    moco, random = with_diff
    assert (moco["AP50 diff"], moco["AP50 diff n"]) == ("21.0", "3")
    assert float(moco["AP50 diff low"]) == pytest.approx(21 - T_975_2 / math.sqrt(3), abs=1e-3)
    assert random["AP50 diff"] == "" and random["AP50"] == "12.0"


def test_latex_uses_pm():
    latex = render(build_blocks(SEEDS3, baseline="random"), "latex")
    body = [line for line in latex.splitlines() if not line.startswith("%")]  # the tabulars, not the comments
    assert r"33.0 $\pm$ 3.0" in latex and not any("±" in line or "Δ" in line for line in body)
    assert r"$\Delta$ AP50" in latex
    assert "\\toprule" in latex and "% Protocol:" in latex
    with pytest.raises(ValueError, match="unknown table format"):
        render(build_blocks(RECORDS), "html")


def test_plot_has_one_panel_per_block_and_metric(tmp_path):
    from matplotlib.collections import PathCollection
    from PIL import Image

    from mixbench.transfer.plot import figure, write_plot

    blocks = build_blocks([*SEEDS3, RECORDS[3]], paper=True)  # Faster R-CNN: 2 metrics, RetinaNet: 6
    fig = figure(blocks)
    assert len(fig.axes) == 2 + 6
    ax = fig.axes[0]
    assert ax.get_title() == "Faster R-CNN, BN frozen: AP50"
    assert [p.get_height() for p in ax.patches] == pytest.approx([33.0, 12.0])  # bars: the means
    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sorted(y for c in dots for _, y in c.get_offsets()) == pytest.approx([10, 12, 14, 30, 33, 36])
    path = write_plot(blocks, tmp_path / "t.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 0
    with pytest.raises(ValueError, match="ending in .png"):
        write_plot(blocks, tmp_path / "t.pdf")


def write_all(folder, records):
    for r in records:
        write_record(record_path(folder, r["config"]["name"], r["checkpoint"]["name"], r["run_key_id"]), r)


def test_table_command_skips_and_names_foreign_files_and_strict_stops(tmp_path, capsys):
    from mixbench.cli import main

    folder = tmp_path / "records"
    write_all(folder, [*RECORDS[2:], *SEEDS3])
    out, plot = tmp_path / "t.md", tmp_path / "t.png"
    assert main(["table", str(folder), "--out", str(out), "--plot", str(plot), "--baseline", "random"]) == 0
    text = out.read_text()
    assert text in capsys.readouterr().out and "33.0 ± 3.0" in text and plot.stat().st_size > 0
    (folder / "notes.json").write_text(json.dumps({"schema": "other"}))
    assert main(["table", str(folder)]) == 0
    got = capsys.readouterr()
    assert f"Skipped (not valid run records): {folder / 'notes.json'} (not a valid run record: foreign schema" \
        in got.out
    assert f"skipped {folder / 'notes.json'}" in got.err
    assert main(["table", str(folder), "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mixbench table: error: {folder / 'notes.json'}: not a valid run record: foreign schema")
    assert "\n" not in err
    assert main(["table", str(folder), "--baseline", "randon"]) == 2
    assert "--baseline 'randon': no measured row of that name" in capsys.readouterr().err


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


def test_protocol_line_states_the_new_layers_norms_and_width_from_the_record():
    from mixbench.transfer.tables import protocol

    paper = settings("RetinaNet", "coco", "frozen")  # records without the keys: the paper's no-norm 256-wide FPN
    assert protocol(paper).startswith("RetinaNet R18-FPN (no norm in neck/heads), backbone BN frozen")
    demo = dict(paper, fpn_channels=128, neck_norm=None,
                head_norms={"bbox_head": {"type": "GN", "num_groups": 32, "requires_grad": True}})
    assert protocol(demo).startswith("RetinaNet R18-FPN 128-wide (GN in bbox_head, no norm in neck), backbone BN")
    rcnn = dict(paper, fpn_channels=256, neck_norm=None, head_norms={"rpn_head": None, "roi_head.bbox_head": None})
    assert "-FPN (no norm in neck/heads)" in protocol(rcnn)
    # frozen backbone layers (mmdet's frozen_stages) are stated; the paper's -1 (all trained) is not
    assert ", stem and stages 1-4 frozen," in protocol(dict(paper, frozen_stages=4))
    assert ", stem and stage 1 frozen," in protocol(dict(paper, frozen_stages=1))
    assert "stem" not in protocol(dict(paper, frozen_stages=-1))
