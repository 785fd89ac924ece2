"""This process's place in a run: rank, world size and its own seed, with or without ``torch.distributed``.

One process (tests, a laptop) answers rank 0 of 1, so callers never branch on whether a process group exists.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["draw_seed", "process_seed", "rank", "world_size"]


def world_size() -> int:
    """Number of processes (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when torch.distributed is not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def draw_seed(seed: int | None) -> int:
    """``seed``, or one drawn from torch's global generator when None (which mmengine's ``randomness.seed`` sets
    before the model is built, so the draw follows the run's seed)."""
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    return int(seed)


def process_seed(seed: int | None) -> int:
    """:func:`draw_seed` plus this process's rank: every process draws its own random stream, since identical draws
    on every rank would repeat the same crops and mixtures across the global batch."""
    return draw_seed(seed) + rank()
