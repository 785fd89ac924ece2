"""Run keys: what decides a result, as one dict that work dirs, records and reuse are keyed by.

Every stage states its runs the same way (:func:`run_key`): the config's name and the digest of its resolved
content, the data root, the seed, the number of processes, and the stage's own facts (for transfer, the sha256 of
the checkpoint it starts from). Two runs with equal keys compute the same thing; any changed setting changes the
key, so a run never resumes or reuses another's work.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["NOT_RESULT_KEYS", "config_digest", "key_id", "run_key"]

# Top-level config keys that say where and how a run is executed and logged, not what it computes: left out of
# :func:`config_digest`, so moving a work dir or changing a log interval does not restart finished work.
NOT_RESULT_KEYS = ("work_dir", "resume", "load_from", "launcher", "visualizer", "vis_backends", "log_level",
                   "log_processor", "default_hooks", "env_cfg", "cpu_threads")


def config_digest(cfg: Any, ignore: tuple[str, ...] = NOT_RESULT_KEYS) -> str:
    """sha256 of a resolved mmengine config's content (after inheritance and ``--cfg-options``), minus ``ignore``.

    Any changed setting (lr, epochs, data root, schedule, a hook that changes training) changes it. Values JSON
    cannot hold (types, tuples) are hashed as their text.
    """
    plain = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    plain = {k: v for k, v in plain.items() if k not in ignore}
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def key_id(key: dict[str, Any]) -> str:
    """A short stable name for a run key (16 hex digits of its sha256), used in work dir and record names."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_key(cfg: Any, *, config: str | os.PathLike, seed: int | None, world_size: int, data_root: str | os.PathLike,
            **facts: Any) -> dict[str, Any]:
    """``{config, config_sha256, data_root, seed, world_size, **facts}`` for a resolved config.

    Args:
        cfg: the resolved config the run trains with.
        config: its file; the key holds the file's stem.
        seed: the run's seed (None: the config leaves it to torch, which the key then says).
        world_size: number of processes (the global batch follows it).
        data_root: where the data is read from, made absolute so two working directories agree.
        facts: what else decides the result, e.g. ``checkpoint_sha256``.
    """
    return {"config": Path(config).stem, "config_sha256": config_digest(cfg),
            "data_root": os.path.abspath(data_root), "seed": None if seed is None else int(seed),
            "world_size": int(world_size), **facts}
