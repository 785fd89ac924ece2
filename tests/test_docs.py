"""The prose states facts the code owns: each one here is read from the code and compared with the text."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest

from mixbench.base.launch import LAUNCHERS
from mixbench.cli import build_parser
from mixbench.convert.catalog import layout_table
from mixbench.pretrain.mixing import SEMANTICS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _subparsers(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in (parser or build_parser())._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _parser_of(row: str) -> argparse.ArgumentParser:
    """The (sub-)parser a row's command line runs, e.g. ``mixbench bench pretrain`` -> bench's ``pretrain``."""
    words = re.search(r"`mixbench ([a-z -]+)", row).group(1).split()
    parser = _subparsers()[words[0]]
    for word in words[1:]:
        nested = _subparsers(parser) if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions) else {}
        if word not in nested:
            break
        parser = nested[word]
    return parser


# Options whose parser checks the value itself (their choices live in a module the parser must not import).
CHECKED_LATER = {"--semantics": SEMANTICS}


def _command_rows() -> list[str]:
    """The rows of the README's commands table (its first column)."""
    section = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    return [re.split(r"(?<!\\)\|", line)[1] for line in section.splitlines() if line.startswith("| `mixbench")]


def test_the_checkpoint_table_is_the_catalog() -> None:
    assert layout_table("github") in (ROOT / "docs" / "checkpoints.md").read_text()


def test_the_commands_table_lists_every_command() -> None:
    named = {m.group(1) for row in _command_rows() for m in re.finditer(r"`mixbench ([a-z-]+)", row)}
    assert named == set(_subparsers())


@pytest.mark.parametrize("row", _command_rows())
def test_the_choices_the_commands_table_states_are_the_parsers(row: str) -> None:
    options = {opt: a for a in _parser_of(row)._actions for opt in a.option_strings}
    stated = re.findall(r"(--[a-z-]+) ([\w-]+(?:\\\|[\w-]+)+)", row)
    for opt, choices in stated:
        assert sorted(choices.split("\\|")) == sorted(options[opt].choices or CHECKED_LATER[opt]), (row, opt)


@pytest.mark.parametrize("row", _command_rows())
def test_every_option_the_commands_table_names_is_the_parsers(row: str) -> None:
    options = {opt for a in _parser_of(row)._actions for opt in a.option_strings}
    assert sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", row)) - options) == [], row


def test_the_launchers_the_readme_states_are_the_code() -> None:
    stated = re.search(r"`--launcher ([\w|]+)`", README).group(1)
    assert tuple(stated.split("|")) == LAUNCHERS
    for name in ("pretrain", "linear", "transfer"):
        launcher = next(a for a in _subparsers()[name]._actions if "--launcher" in a.option_strings)
        assert tuple(launcher.choices) == LAUNCHERS


def test_every_file_the_readme_links_exists() -> None:
    links = re.findall(r"\]\(((?:docs|results)/[^)]+)\)", README)
    assert links
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_the_readme_quotes_the_demo_tables_as_generated() -> None:
    """Every table (and its protocol, notes and paired differences) of the committed demo output appears in the
    README unchanged: the README shows what the demo printed, nothing typed by hand. The committed file, not the
    working copy: a local `make demo` rewrites results/demo/ with this machine's numbers."""
    committed = subprocess.run(["git", "show", "HEAD:results/demo/tables.md"], cwd=ROOT, capture_output=True,
                               text=True)
    generated = committed.stdout if committed.returncode == 0 else (ROOT / "results" / "demo" / "tables.md").read_text()
    blocks = [block.strip() for block in generated.split("\n### ")[1:]]
    assert blocks
    for block in blocks:
        assert block in README, block.splitlines()[0]
    assert "(results/demo/transfer.png)" in README


def test_the_readme_quotes_the_gpu_figures_as_measured() -> None:
    """The GPU block is the report of the committed device-check JSON, not numbers typed in."""
    import json
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import gpu_check

    gpu = ROOT / "results" / "gpu"
    measured, doctor = (json.loads((gpu / f"{n}_2026-12-04_h200.json").read_text()) for n in ("measure", "doctor"))
    assert gpu_check.report(measured, doctor) in (ROOT / "README.md").read_text()
