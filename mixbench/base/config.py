"""Where configs live and how a command line names them: one lookup, one ``--cfg-options`` parser.

Configs ship inside the package (``mixbench.configs``), so an installed mixbench runs without the repository.
A command accepts a config as a path that exists (``./my_cfg.py``, ``/abs/cfg.py``) or as a path relative to the
shipped config folder, with or without the leading ``configs/`` (``configs/pretrain/moco_r18_synthetic.py`` works
from any working directory).
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_ROOT", "NOT_RESULT_KEYS", "add_cfg_options", "config_digest", "key_id", "parse_cfg_options",
           "resolve_config"]

CONFIG_ROOT = Path(str(files("mixbench.configs")))
# Top-level config keys that say where and how a run is executed and logged, not what it computes: left out of
# :func:`config_digest`, so moving a work dir or changing a log interval does not restart finished work.
NOT_RESULT_KEYS = ("work_dir", "resume", "load_from", "launcher", "visualizer", "vis_backends", "log_level",
                   "log_processor", "default_hooks", "env_cfg", "cpu_threads")


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


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options KEY=VALUE ...`` parsed by mmengine's public ``DictAction`` (lists, tuples, nested keys)."""
    from mmengine.config import DictAction

    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, default={}, metavar="KEY=VALUE",
        help="override config keys, e.g. train_cfg.max_epochs=5 optim_wrapper.optimizer.lr=0.1",
    )


def parse_cfg_options(pairs: list[str] | None) -> dict[str, Any]:
    """The same parsing for option lists that come from elsewhere than argparse (pipeline configs, tests)."""
    from mmengine.config import DictAction

    if not pairs:
        return {}
    ns = argparse.Namespace()
    DictAction(option_strings=[], dest="opts")(argparse.ArgumentParser(), ns, list(pairs))
    return dict(ns.opts)


def config_digest(cfg: Any, ignore: tuple[str, ...] = NOT_RESULT_KEYS) -> str:
    """sha256 of a resolved mmengine config's content (after inheritance and ``--cfg-options``), minus ``ignore``.

    Two runs whose digests match compute the same thing; any changed setting (lr, epochs, data root, schedule,
    a hook that changes training) changes it. Values JSON cannot hold (types, tuples) are hashed as their text.
    """
    import hashlib
    import json

    plain = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    plain = {k: v for k, v in plain.items() if k not in ignore}
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def key_id(key: dict[str, Any]) -> str:
    """A short stable name for a run key (16 hex digits of its sha256), used in work dir names."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
