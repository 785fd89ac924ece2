"""The benches (mixing cost, data path) run every variant in one process and print positive timings and ratios;
the semantics they print are the ones their preprocessors mixed with."""

from __future__ import annotations

import argparse

import pytest

from mixbench.commands import evaluate as eval_cli

VARIANTS = ["plain", "global", "region", "global+region"]


@pytest.mark.slow
def test_bench_prints_all_rows(capsys):
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "bench",
            "pretrain",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--rounds",
            "1",
            "--img-size",
            "32",
            "--batch-size",
            "8",
            "--K",
            "64",
        ]
    )
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in VARIANTS}
    assert sorted(rows) == sorted(VARIANTS)
    for name, cols in rows.items():
        step_ms, steps_per_s, ratio, min_ms, ratio_min = (float(c) for c in cols[1:6])
        prep_ms, peak = float(cols[6]), float(cols[8])
        assert min(step_ms, steps_per_s, ratio, min_ms, ratio_min, prep_ms, peak) > 0, name
        assert min_ms <= step_ms
        # steps/s = 1000 / step ms, up to the printed rounding (2 decimals; step ms to 0.1)
        assert abs(steps_per_s - 1000 / step_ms) <= 0.0051 + steps_per_s * 0.051 / step_ms
        assert int(cols[-1]) == 2
    assert float(rows["plain"][3]) == 1.0 and float(rows["plain"][5]) == 1.0


@pytest.mark.slow
def test_data_bench_prints_both_pipelines(synthetic_root, capsys):
    """``--data``: the PIL reference and the device pipeline side by side, from the synthetic JPEG files."""
    import torch

    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["bench", "pretrain", "--data", str(synthetic_root["imagenet"].parent), "--img-size", "32",
         "--batch-size", "4", "--workers", "0", "--steps", "1", "--rounds", "2", "--K", "16"]
    )  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert args.func(args) == 0
    finally:
        torch.set_num_threads(before)
    lines = capsys.readouterr().out.splitlines()
    assert str(synthetic_root["imagenet"] / "train") in lines[0]
    assert "(authors: the authors' released code)" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in ("pil", "device")}
    assert sorted(rows) == ["device", "pil"]  # no nvjpeg row without CUDA
    assert rows["pil"][1] == "augment" and rows["device"][1] == "decode"
    for cols in rows.values():
        data_img_s, step_img_s, speed, cpu_ms, cpu_ratio = (float(c) for c in cols[2:7])
        assert min(data_img_s, step_img_s, speed, cpu_ms, cpu_ratio) > 0
        assert cols[7:10] == ["n/a", "(CPU)", "8"]  # 2 rounds x 1 batch x 4 images
    assert float(rows["pil"][4]) == 1.0 and float(rows["pil"][6]) == 1.0


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_data_bench_bad_data(tmp_path, capsys):
    from mixbench.pretrain.bench_data import resolve_image_root

    with pytest.raises(FileNotFoundError, match="no ImageNet-style"):
        resolve_image_root(tmp_path)
    assert _run_cli(["bench", "pretrain", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path) in err and "no ImageNet-style" in err


def test_bench_rejects_unknown_semantics(capsys):
    assert _run_cli(["bench", "pretrain", "--semantics", "code", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'code'" in err and "paper_eq" in err


@pytest.mark.parametrize(("semantics", "label"), [("authors", "the authors' released code"),
                                                  ("paper_eq", "the printed equations")])  # fmt: skip
def test_bench_prints_the_semantics_it_mixed_with(semantics, label, capsys, monkeypatch):
    """Every plan the timed preprocessors apply has the semantics asked for, and the footer names exactly it."""
    from mixbench.pretrain import preprocessor

    applied = []
    real_apply = preprocessor.apply_plan

    def spy(x, plan):
        applied.append(plan.semantics)
        return real_apply(x, plan)

    monkeypatch.setattr(preprocessor, "apply_plan", spy)
    argv = ["bench", "pretrain", "--steps", "1", "--warmup", "0", "--rounds", "1", "--img-size", "32",
            "--batch-size", "4", "--K", "16", "--semantics", semantics]  # fmt: skip
    assert _run_cli(argv) == 0
    assert applied and set(applied) == {semantics}
    footer = capsys.readouterr().out.splitlines()[-1]
    assert footer.endswith(f"semantics: {semantics} ({label})"), footer


def test_bench_bare_limit_row_and_channels_last():
    """The GPU check's settings on CPU: a 'bare' row (the same network work without MoCo) and NHWC weights."""
    import math

    from mixbench.pretrain.bench_mixing import run_bench

    rows, _ = run_bench(arch="resnet18", img_size=32, batch_size=4, steps=1, warmup=1, rounds=1, K=16,
                        channels_last=True, bare=True)
    by = {r["variant"]: r for r in rows}
    assert sorted(by) == sorted([*VARIANTS, "bare"])
    assert all(r["img_per_s"] == pytest.approx(4 / (r["step_ms"] / 1e3)) for r in rows)
    assert math.isnan(by["bare"]["prep_ms"]) and by["bare"]["n_steps"] == 1
