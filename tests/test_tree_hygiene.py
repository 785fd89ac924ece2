"""Two rules the tree keeps: no test can skip (a broken install fails), and code, configs and tests speak of the
present: history lives in git, not in issue numbers, notes outside the repository or past tenses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The patterns are built from pieces so that this file does not match them itself.
SKIPS = re.compile("|".join(["import" + "orskip", "skip" + "if", r"mark\.skip", r"pytest\.skip"]))
HISTORY = re.compile(
    "|".join([r"\bissue [0-9]+", r"\bfinding [0-9]", r"\bcontract [0-9]", r"\bused" + r" to\b",
              *(name + r"\.md" for name in ("DESIGN", "KINDS", "STYLE"))]),
    re.IGNORECASE,
)
FOLDERS = ("pretrain", "convert", "transfer", "mixbench", "configs", "tests")


def _text_files(folder: str) -> list[Path]:
    files = []
    for path in sorted((ROOT / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".md", ".txt", ".yaml"):
            files.append(path)
    return files


def _hits(paths: list[Path], pattern: re.Pattern) -> list[str]:
    return [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in paths
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]


def test_no_test_can_skip() -> None:
    hits = _hits([p for p in _text_files("tests") if p.suffix == ".py"], SKIPS)
    assert not hits, "a test that cannot run here must fail or be deleted, not skip:\n" + "\n".join(hits)


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_tree_speaks_of_the_present(folder: str) -> None:
    hits = _hits(_text_files(folder), HISTORY)
    assert not hits, "history belongs in git; say what is and why:\n" + "\n".join(hits)


def test_the_patterns_catch_what_they_are_for() -> None:
    for line in ("pytest.import" + "orskip('x')", "@pytest.mark" + ".skip" + "if(True, reason='')"):
        assert SKIPS.search(line), line
    for line in ("# Issue " + "12: fixed", "finding " + "3 says", "see DESIGN" + ".md", "this used" + " to hang"):
        assert HISTORY.search(line), line
    assert not HISTORY.search("the tissue 3 sample; no issues 4 here")
