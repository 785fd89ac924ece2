"""``--cfg-options``: one declaration, mmengine's value syntax, every key checked against the resolved config.

The command-line tests go through ``mixbench.cli.main`` and stop where the Runner would be built (its ``from_cfg``
is replaced), so no test trains: a bad key must be refused while the config is loaded, before that point.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import pytest
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mixbench.base.config import ConfigOptionError, merge_cfg_options, parse_cfg_options
from mixbench.cli import build_parser, main

PRETRAIN = "configs/pretrain/moco_r18_synthetic.py"
LINEAR = "configs/linear/linear_1xb16-2e_synthetic.py"
VOC = "configs/transfer/demo/faster-rcnn_r18_fpn_frozen-bn_demo_voc0712.py"
COMMANDS = ("pretrain", "linear", "transfer")


class _RunnerBuilt(Exception):
    """Raised where the Runner would be built: the config got through loading and checking."""


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list:
    """The configs the Runner was asked to build from (none is built)."""
    seen: list = []

    def from_cfg(cls, cfg):
        seen.append(cfg)
        raise _RunnerBuilt

    monkeypatch.setattr(Runner, "from_cfg", classmethod(from_cfg))
    return seen


def _argv(command: str, tmp_path: Path, options: list[str], data: Path | None = None) -> list[str]:
    """Each command's shortest command line that loads its config (and would then train)."""
    if command == "pretrain":
        return ["pretrain", PRETRAIN, "--work-dir", str(tmp_path / "wd"), "--cfg-options", *options]
    if command == "linear":  # num_classes given, so nothing counts class folders
        return ["linear", LINEAR, "--checkpoint", "random:resnet18", "--work-dir", str(tmp_path / "wd"),
                "--cfg-options", "model.num_classes=3", *options]
    return ["transfer", "random", "--config", VOC, "--records-dir", str(tmp_path / "records"), "--work-root",
            str(tmp_path / "wd"), *(["--data-root", str(data)] if data else []), "--cfg-options", *options]


def _one_line_error(capsys: pytest.CaptureFixture, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"mixbench {command}: error: "), err
    return err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_misspelt_key_stops_with_the_nearest_key(command, tmp_path, capsys, built) -> None:
    assert main(_argv(command, tmp_path, ["train_cfg.max_epochz=3"])) == 2
    err = _one_line_error(capsys, command)
    assert "train_cfg.max_epochz" in err and "did you mean train_cfg.max_epochs?" in err
    assert built == []


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_key_is_named(command, tmp_path, capsys, built) -> None:
    assert main(_argv(command, tmp_path, ["nonexistent.key=5"])) == 2
    err = _one_line_error(capsys, command)
    assert "nonexistent.key" in err and "+nonexistent.key=" in err  # names the key and how to add one


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("pair", ["=3", "foo", "a..b=1", "+=1", "train_cfg. max_epochs=1", "train_cfg.max_epochs=[1,2"])
def test_a_malformed_pair_is_one_line(command, pair, tmp_path, capsys, built) -> None:
    assert main(_argv(command, tmp_path, [pair])) == 2
    assert repr(pair) in _one_line_error(capsys, command)


@pytest.mark.parametrize("command", COMMANDS)
def test_plus_adds_a_key(command, tmp_path, built, synthetic_root) -> None:
    argv = _argv(command, tmp_path, ["+new.key=1", "train_cfg.max_epochs=1"], data=synthetic_root["voc"].parent)
    with contextlib.suppress(_RunnerBuilt):
        main(argv)
    assert len(built) == 1, "the command stopped before building its Runner"
    assert built[0].new.key == 1 and built[0].train_cfg.max_epochs == 1


def test_options_repeat_and_accumulate() -> None:
    args = build_parser().parse_args(["pretrain", PRETRAIN, "--cfg-options", "a=1", "--cfg-options", "b=2", "c=3"])
    assert args.cfg_options == ["a=1", "b=2", "c=3"]  # raw strings: parsed and checked when the command runs


# ----------------------------------------------------------------------------------------------- the functions
def _cfg() -> Config:
    return Config(dict(model=dict(type="MoCo", K=1024, backbone=dict(depth=18)),
                       train_cfg=dict(max_epochs=2, val_interval=1),
                       train_pipeline=[dict(type="Resize", size=64), dict(type="Flip")],
                       scale=(64, 64)))


def test_values_read_as_mmengine_reads_them() -> None:
    pairs = ["model.K=4096", "a.b=1,2", "c=(1,2)", "d=[x,[1,2]]", "e=true", "f=None", "g=0.5", "h=text"]
    ns = argparse.Namespace()
    DictAction(option_strings=[], dest="opts")(argparse.ArgumentParser(), ns, pairs)
    assert parse_cfg_options(pairs) == ns.opts == {"model.K": 4096, "a.b": [1, 2], "c": (1, 2), "d": ["x", [1, 2]],
                                                   "e": True, "f": None, "g": 0.5, "h": "text"}


def test_known_keys_merge_as_mmengine_merges_them() -> None:
    options = {"model.K": 4096, "train_cfg.max_epochs": 5, "train_pipeline.1.type": "Crop", "scale": (32, 32)}
    ours, ref = _cfg(), _cfg()
    merge_cfg_options(ours, options)
    ref.merge_from_dict(options)
    assert ours.to_dict() == ref.to_dict()
    assert ours.model.K == 4096 and ours.train_pipeline[1].type == "Crop" and ours.train_pipeline[0].size == 64


@pytest.mark.parametrize(("key", "says"), [
    ("model.KK", "model has no 'KK'; did you mean model.K?"),
    ("trian_cfg.max_epochs", "did you mean train_cfg.max_epochs?"),
    ("trian_cfg.max_epochz", "did you mean train_cfg?"),  # the first unknown part is the one corrected
    ("zzz", "the top level has no 'zzz'. To add a new key, write +zzz=..."),
    ("model.K.x", "model.K is int 1024, not a dict"),
    ("scale.0", "scale is tuple (64, 64), not a dict"),
    ("train_pipeline.2.type", "train_pipeline is a list of 2 items; '2' is not an index of it"),
    ("train_pipeline.size", "'size' is not an index of it"),
    ("+model.K", "model.K is already in the config"),
    ("+model.K.x", "model.K is int 1024, not a dict"),
])
def test_bad_keys_are_named(key: str, says: str) -> None:
    cfg = _cfg()
    before = cfg.to_dict()
    with pytest.raises(ConfigOptionError) as err:
        merge_cfg_options(cfg, {key: 1})
    assert key in str(err.value) and says in str(err.value) and "\n" not in str(err.value)
    assert cfg.to_dict() == before  # nothing merged


def test_plus_adds_new_keys_and_dicts_below_them() -> None:
    cfg = _cfg()
    merge_cfg_options(cfg, {"+model.neck.width": 8, "+extra": [1, 2], "model.K": 16})
    assert cfg.model.neck.width == 8 and cfg.extra == [1, 2] and cfg.model.K == 16 and cfg.model.type == "MoCo"


def test_pipeline_style_options_are_checked_too() -> None:
    """Pipeline configs give ``cfg_options`` as a dict; the same check applies to them."""
    with pytest.raises(ConfigOptionError, match="did you mean train_cfg.max_epochs"):
        merge_cfg_options(_cfg(), {"train_cfg.max_epoch": 3})


# ----------------------------------------------------------------------------------------------- choices
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _choices(parser: argparse.ArgumentParser, dest: str) -> list:
    return list(next(a for a in parser._actions if a.dest == dest).choices)


def test_every_launcher_choice_comes_from_launch(monkeypatch) -> None:
    from mixbench.base import launch

    monkeypatch.setattr(launch, "LAUNCHERS", ("none", "a-new-launcher"))
    subs = _subparsers(build_parser())
    takers = [name for name, p in subs.items() if any(a.dest == "launcher" for a in p._actions)]
    assert sorted(takers) == ["linear", "pretrain", "transfer"]
    assert all(_choices(subs[name], "launcher") == ["none", "a-new-launcher"] for name in takers)


def test_suite_and_bn_choices_come_from_suites(monkeypatch) -> None:
    from mixbench.transfer import suites

    monkeypatch.setattr(suites, "BN_MODES", ("frozen", "a-new-mode"))
    monkeypatch.setitem(suites.SUITES, "paper", {"voc": {}, "a-new-suite": {}})
    transfer = _subparsers(build_parser())["transfer"]
    assert _choices(transfer, "suite") == ["voc", "a-new-suite", "all"]
    assert _choices(transfer, "bn") == ["frozen", "a-new-mode", "both"]


def test_every_config_taking_command_declares_cfg_options_once() -> None:
    subs = _subparsers(build_parser())
    takers = {name for name, p in subs.items() if any(a.dest == "cfg_options" for a in p._actions)}
    assert takers == {"linear", "pretrain", "transfer", "pipeline"}
    for name in takers:
        action = next(a for a in subs[name]._actions if a.dest == "cfg_options")
        assert action.default == [] and "+KEY=VALUE" in action.help


@pytest.mark.parametrize("where", ["pretrain", "transfer"])
def test_a_misspelt_key_in_a_pipeline_config_is_one_line(where, tmp_path, capsys, synthetic_root) -> None:
    """A pipeline config's ``cfg_options`` (per pretraining run) and ``transfer_cfg_options`` are checked the same
    way, and the error names the pipeline config."""
    typo = "{'train_cfg.max_epochz': 1}"
    config = tmp_path / "pipeline.py"
    config.write_text("\n".join([
        f"data_dir = {str(synthetic_root['imagenet'].parent)!r}", f"work_dir = {str(tmp_path / 'work')!r}",
        f"results_dir = {str(tmp_path / 'results')!r}", "suites = ['voc']", "bn_modes = ['frozen']",
        "suite_scale = 'demo'", "random_init = True",
        f"pretrain = [dict(name='moco', config={PRETRAIN!r}, cfg_options={typo})]" if where == "pretrain" else
        f"pretrain = []\ntransfer_cfg_options = {typo}",
    ]) + "\n")
    assert main(["pipeline", str(config)]) == 2
    err = _one_line_error(capsys, "pipeline")
    assert str(config) in err and "did you mean train_cfg.max_epochs?" in err
