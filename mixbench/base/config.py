"""Where configs live, how a command line names them, and how ``--cfg-options`` reach a config.

Configs ship inside the package (``mixbench.configs``), so an installed mixbench runs without the repository.
A command accepts a config as a path that exists (``./my_cfg.py``, ``/abs/cfg.py``) or as a path relative to the
shipped config folder, with or without the leading ``configs/`` (``configs/pretrain/moco_r18_synthetic.py`` works
from any working directory).

``--cfg-options KEY=VALUE ...`` is declared once (:func:`add_cfg_options`), parsed once (:func:`parse_cfg_options`,
mmengine's ``DictAction`` syntax) and merged once (:func:`merge_cfg_options`): a KEY must exist in the resolved
config, so a typo stops the run instead of being merged and ignored; ``+KEY=VALUE`` adds a key the config does not
have (Hydra's spelling).
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

__all__ = ["ADD_PREFIX", "CFG_OPTIONS_HELP", "CONFIG_ROOT", "ConfigOptionError", "add_cfg_options", "merge_cfg_options",
           "parse_cfg_options", "resolve_config"]

CONFIG_ROOT = Path(str(files("mixbench.configs")))


def resolve_config(path: str | Path) -> Path:
    """An existing config file for ``path``: as given, else under :data:`CONFIG_ROOT`.

    Raises:
        FileNotFoundError: neither exists; the message names both places looked in.
    """
    p = Path(path)
    if p.is_file():
        return p
    rel = p.relative_to("configs") if p.parts[:1] == ("configs",) else p
    shipped = CONFIG_ROOT / rel
    if not p.is_absolute() and shipped.is_file():
        return shipped
    raise FileNotFoundError(f"{path}: no such config (looked in {Path.cwd()} and in the shipped {CONFIG_ROOT})")


ADD_PREFIX = "+"
CFG_OPTIONS_HELP = (
    "override config keys: KEY=VALUE with dotted nested keys (train_cfg.max_epochs=5), lists as a,b or [a,b], tuples "
    "as (a,b), list items by index (train_pipeline.0.type=X). Every KEY must exist in the config: a misspelt one "
    "stops the run and the nearest existing key is named. +KEY=VALUE adds a key the config does not have."
)


class ConfigOptionError(ValueError):
    """A ``--cfg-options`` pair that is malformed or names a key the config does not have (one-line message)."""


def add_cfg_options(parser: argparse.ArgumentParser, more_help: str = "") -> None:
    """Declare ``--cfg-options KEY=VALUE ...`` on ``parser``: the raw strings, repeatable; ``more_help`` follows
    the shared help text.

    Parsing and checking happen when the command runs (:func:`parse_cfg_options`, :func:`merge_cfg_options`), so a
    bad pair ends in a one-line error with exit status 2 rather than in argparse or a traceback.
    """
    parser.add_argument("--cfg-options", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help=f"{CFG_OPTIONS_HELP} {more_help}".strip())


def _check_key(key: str, pair: str) -> None:
    """Refuse an empty key, or one with an empty or blank part between dots (mmengine would merge either)."""
    path = key.removeprefix(ADD_PREFIX)
    if not path:
        raise ConfigOptionError(f"--cfg-options {pair!r}: empty key; write KEY=VALUE")
    parts = path.split(".")
    if any(not part or any(c.isspace() for c in part) for part in parts):
        raise ConfigOptionError(f"--cfg-options {pair!r}: malformed key {key!r} (an empty or blank part between "
                                "dots); write dotted.key=VALUE")


def parse_cfg_options(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["a.b=1", "+c=x,y"]`` -> ``{"a.b": 1, "+c": ["x", "y"]}``, values as mmengine's ``DictAction`` reads them.

    Raises:
        ConfigOptionError: a pair without ``=``, with an empty key or key part (``=3``, ``a..b=1``), or a value
            mmengine cannot read (unbalanced brackets); the message names the pair.
    """
    from mmengine.config import DictAction

    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, _ = pair.partition("=")
        if not sep:
            raise ConfigOptionError(f"--cfg-options {pair!r}: expected KEY=VALUE")
        _check_key(key, pair)
        ns = argparse.Namespace()
        try:
            DictAction(option_strings=[], dest="options")(argparse.ArgumentParser(), ns, [pair])
        except (AssertionError, ValueError) as err:  # DictAction asserts balanced brackets
            raise ConfigOptionError(f"--cfg-options {pair!r}: cannot read the value ({err})") from None
        options.update(ns.options)
    return options


def _tree(cfg: Any) -> Any:
    """The config as plain nested dicts and lists (an mmengine ``Config``, a ``ConfigDict`` or a dict)."""
    return cfg.to_dict() if hasattr(cfg, "to_dict") else cfg


def _exists(tree: Any, parts: list[str]) -> bool:
    for part in parts:
        if isinstance(tree, list) and part.isdigit() and int(part) < len(tree):
            tree = tree[int(part)]
        elif isinstance(tree, Mapping) and part in tree:
            tree = tree[part]
        else:
            return False
    return True


def _unknown(tree: Mapping, parts: list[str], i: int, key: str) -> ConfigOptionError:
    """The error for ``parts[i]`` missing under ``parts[:i]``, with the nearest key there when one is close."""
    where = ".".join(parts[:i]) or "the top level"
    hint = "."
    close = difflib.get_close_matches(parts[i], [str(k) for k in tree], n=1)
    if close:
        guess = [*parts[:i], close[0], *parts[i + 1:]]
        if not _exists(tree, [close[0], *parts[i + 1:]]):
            guess = guess[: i + 1]
        hint = f"; did you mean {'.'.join(guess)}?"
    return ConfigOptionError(f"--cfg-options {key}: unknown config key: {where} has no {parts[i]!r}{hint} To add a "
                             f"new key, write {ADD_PREFIX}{key}=...")


def _check_path(tree: Any, key: str) -> None:
    """Walk ``key`` (dotted, optionally ``+``-prefixed) through the resolved config ``tree``; raise where it fails."""
    add = key.startswith(ADD_PREFIX)
    parts = key.removeprefix(ADD_PREFIX).split(".")
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        if isinstance(tree, list):  # mmengine sets list items by index (a.0.b=...)
            if not (part.isdigit() and int(part) < len(tree)):
                raise ConfigOptionError(f"--cfg-options {key}: {where} is a list of {len(tree)} items; {part!r} is "
                                        f"not an index of it (0 to {len(tree) - 1})")
            tree = tree[int(part)]
        elif not isinstance(tree, Mapping):
            raise ConfigOptionError(f"--cfg-options {key}: {where} is {type(tree).__name__} {tree!r}, not a dict; "
                                    f"it has no key {part!r}")
        elif part in tree:
            tree = tree[part]
        elif add:
            return  # a new key (and any dicts below it)
        else:
            raise _unknown(tree, parts, i, key)
    if add:
        raise ConfigOptionError(f"--cfg-options {key}: {key.removeprefix(ADD_PREFIX)} is already in the config; set "
                                f"it without {ADD_PREFIX!r}")


def merge_cfg_options(cfg: Any, options: Mapping[str, Any] | None) -> None:
    """Merge parsed ``--cfg-options`` into ``cfg`` (an mmengine ``Config``) after checking every key against it.

    ``options`` maps dotted keys to values, as :func:`parse_cfg_options` returns them or as a pipeline config writes
    them (``{'train_cfg.max_epochs': 3}``). Each key must already be in the config, through dicts or list indices
    (``a.0.b``); a key spelt ``+a.b`` is added and must not exist yet.

    Raises:
        ConfigOptionError: a key that is unknown (with the nearest existing key when one is close), that goes
            through a value that is not a dict or list, or that indexes past a list's end.
    """
    if not options:
        return
    tree = _tree(cfg)
    plain: dict[str, Any] = {}
    for key, value in options.items():
        key = str(key)
        _check_key(key, f"{key}=...")
        _check_path(tree, key)
        plain[key.removeprefix(ADD_PREFIX)] = value
    try:
        cfg.merge_from_dict(plain)
    except (KeyError, TypeError) as err:  # mmengine's refusals (e.g. a dict merged onto a non-dict value)
        raise ConfigOptionError(f"--cfg-options: {err}") from None

