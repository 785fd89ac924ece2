"""The pipeline's live progress: mmengine log lines parsed as mmengine 0.10.7 writes them, plain vs terminal output."""

from __future__ import annotations

import io

from mixbench.progress import ProgressBoard, parse_progress

# Copied from real mmengine 0.10.7 logs of this project (demo transfer and pretraining runs).
TRAIN = ("2026/11/28 07:12:03 - mmengine - INFO - Epoch(train) [1][40/80]  base_lr: 1.0000e-02 lr: 1.0000e-02  "
         "eta: 0:00:52  time: 1.3021  data_time: 0.0113  memory: 0  loss: 1.2345")
TEST = "2026/11/28 07:13:40 - mmengine - INFO - Epoch(test) [ 20/100]    eta: 0:00:31  time: 0.3901"
ITER = "2026/11/28 07:14:00 - mmengine - INFO - Iter(train) [ 150/1000]  lr: 2.0e-02  eta: 0:10:05  time: 0.7"


def test_parse_progress_reads_the_newest_line():
    assert parse_progress("") is None and parse_progress("loading annotations\n") is None
    p = parse_progress("\n".join(["x", TRAIN, "some warning"]))
    assert (p.stage, p.epoch, p.it, p.total, p.eta) == ("train", 1, 40, 80, "0:00:52")
    p = parse_progress(TRAIN + "\n" + TEST)
    assert (p.stage, p.it, p.total, p.eta) == ("test", 20, 100, "0:00:31")
    p = parse_progress(ITER)
    assert (p.stage, p.epoch, p.it, p.total) == ("train", None, 150, 1000)
    assert str(parse_progress(TRAIN)) == "train epoch 1 iter 40/80, eta 0:00:52"


def test_board_plain_output_prints_changes_only(tmp_path):
    log = tmp_path / "job.log"
    log.write_text(TRAIN + "\n")
    out = io.StringIO()  # not a terminal: plain lines
    board = ProgressBoard(out, plain_every=0.0)
    board.update([("transfer voc / moco", log, 0.0)], done=1, failed=0, pending=2)
    board.update([("transfer voc / moco", log, 0.0)], done=1, failed=0, pending=2)  # unchanged: nothing new
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "transfer voc / moco: train epoch 1 iter 40/80, eta 0:00:52" in lines[0]
    log.write_text(TRAIN + "\n" + TEST + "\n")
    board.update([("transfer voc / moco", log, 0.0)], done=1, failed=0, pending=2)
    assert "test iter 20/100" in out.getvalue().splitlines()[-1]


def test_board_redraws_in_place_on_a_terminal(tmp_path):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    board = ProgressBoard(out)
    board.update([("a", tmp_path / "missing.log", 0.0)], done=0, failed=0, pending=0)
    board.update([("a", tmp_path / "missing.log", 0.0)], done=0, failed=0, pending=0)
    text = out.getvalue()
    assert "a: starting" in text and "\x1b[2F\x1b[J" in text  # second draw moved up over the 2-line block
