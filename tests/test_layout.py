"""Project-wide rules: one import namespace, layers that import only downwards, the CLI surface, the paper's list."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mixbench.pretrain.imagenet100 import IMAGENET100_WNIDS

ROOT = Path(__file__).resolve().parents[1]
# package -> source folder, and what each layer may import of mixbench (base < pretrain, convert < transfer < top)
FOLDERS = {"base": ROOT / "mixbench" / "base", "pretrain": ROOT / "pretrain", "convert": ROOT / "convert",
           "transfer": ROOT / "transfer"}
ALLOWED = {"base": {"base"}, "pretrain": {"base", "pretrain"}, "convert": {"base", "convert"},
           "transfer": {"base", "convert", "pretrain", "transfer"}}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _mixbench_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "mixbench":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else "top"


@pytest.mark.parametrize("layer", list(FOLDERS))
def test_layers_import_only_downwards(layer: str) -> None:
    offenders = {}
    for path in sorted(FOLDERS[layer].rglob("*.py")):
        bad = sorted(m for m in _imports(path) if (lay := _mixbench_layer(m)) and lay not in ALLOWED[layer])
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert not offenders, f"{layer} may import only {sorted(ALLOWED[layer])} of mixbench: {offenders}"


@pytest.mark.parametrize("layer", ["base", "pretrain", "convert"])
def test_only_transfer_imports_mmdet_or_mmcv(layer: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] in ("mmdet", "mmcv"))
        for p in sorted(FOLDERS[layer].rglob("*.py"))
        if any(m.split(".")[0] in ("mmdet", "mmcv") for m in _imports(p))
    }
    assert not offenders, f"{layer} must not import mmdet/mmcv (stage independence): {offenders}"


def test_no_repository_path_tricks() -> None:
    """Package code finds configs through mixbench.base.config, never by walking up from __file__."""
    code = [p for f in ("mixbench", "pretrain", "convert", "transfer") for p in (ROOT / f).rglob("*.py")]
    hits = [str(p.relative_to(ROOT)) for p in code if re.search(r"parents\[\d\]|\.parent\.parent", p.read_text())]
    assert not hits, hits


@pytest.mark.parametrize("stage", ["pretrain", "convert", "transfer"])
def test_a_stage_folder_cannot_be_imported_under_another_name(stage: str) -> None:
    """With the repository root on sys.path, `import convert` must fail instead of loading a second copy."""
    done = subprocess.run([sys.executable, "-c", f"import {stage}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and f"mixbench.{stage}" in done.stderr, done.stderr[-500:]


def test_shipped_configs_are_found_from_anywhere(tmp_path: Path) -> None:
    code = ("from mixbench.base.config import resolve_config as r; "
            "print(r('configs/pretrain/moco_r18_synthetic.py')); print(r('pipeline/demo_synthetic.py'))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = [Path(line) for line in done.stdout.split()]
    assert len(found) == 2 and all(p.is_file() and p.parent.parent.name == "configs" for p in found), found


def test_cli_lists_every_stage_command() -> None:
    from mixbench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    expected = {"doctor", "demo-data", "pretrain", "linear", "knn", "flatness", "bench", "convert", "transfer",
                "table", "pipeline", "show-mix", "ablation"}
    assert expected <= set(sub.choices), expected - set(sub.choices)


def test_imagenet100_list_matches_the_paper() -> None:
    """Against the paper's Appendix A, kept verbatim in tests/data (so the check runs in every clone)."""
    text = (ROOT / "tests" / "data" / "imagenet100_paper_appendix_a.txt").read_text()
    wnids = re.findall(r"n\d{8}", text)
    assert len(wnids) == 100 and tuple(wnids) == IMAGENET100_WNIDS
