"""Project-wide rules: stage independence, the CLI surface, the paper's class list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pretrain.imagenet100 import IMAGENET100_WNIDS

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT.parent / "shared" / "paper" / "rethinking-image-mixture.txt"


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", ["pretrain", "convert"])
def test_only_transfer_imports_mmdet_or_mmcv(package: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imported_roots(p) & {"mmdet", "mmcv"})
        for p in sorted((ROOT / package).rglob("*.py"))
        if _imported_roots(p) & {"mmdet", "mmcv"}
    }
    assert not offenders, f"{package}/ must not import mmdet/mmcv (stage independence): {offenders}"


def test_cli_lists_every_stage_command() -> None:
    from transfer.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    expected = {"doctor", "demo-data", "pretrain", "linear", "knn", "flatness", "bench", "convert", "transfer",
                "table", "pipeline"}
    assert expected <= set(sub.choices), expected - set(sub.choices)


def test_imagenet100_list_matches_the_paper() -> None:
    if not PAPER.is_file():
        pytest.skip(f"paper text not found at {PAPER} (it ships in the project's shared/ folder)")
    wnids = re.findall(r"n\d{8}", PAPER.read_text())
    assert tuple(wnids) == IMAGENET100_WNIDS
