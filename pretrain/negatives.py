"""Negatives shared by MoCo and CMC: the MoCo queue, the CMC memory bank, and the cross-process pieces they need
(``concat_all_gather`` and the batch shuffle/unshuffle behind shuffle-BN).

Every helper works with ``torch.distributed`` (any backend, gloo on CPU included) and is a no-op on one process,
so the same code runs in tests, on a laptop and under torchrun.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mixbench.base.dist import rank, world_size


@torch.no_grad()
def concat_all_gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all processes along dim 0 (no gradient, like MoCo's helper).

    Shape: (B, ...) -> (world_size * B, ...), rank r's rows at ``[r * B, (r + 1) * B)``.
    """
    ws = world_size()
    if ws == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(ws)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def batch_shuffle(x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle-BN (MoCo): permute the global batch so each process's BN sees samples of other processes.

    Rank 0 draws the permutation and broadcasts it. Returns this process's shuffled slice and the
    indices that undo the shuffle (for :func:`batch_unshuffle`). One process: identity.

    Shape: x (B, ...) -> ((B, ...), idx_unshuffle (world_size * B,)).
    """
    ws = world_size()
    b = x.shape[0]
    if ws == 1:
        return x, torch.arange(b, device=x.device)
    x_all = concat_all_gather(x)
    idx_shuffle = torch.randperm(b * ws, generator=generator).to(x.device)
    dist.broadcast(idx_shuffle, src=0)
    idx_unshuffle = torch.argsort(idx_shuffle)
    mine = idx_shuffle.view(ws, -1)[rank()]
    return x_all[mine], idx_unshuffle


@torch.no_grad()
def batch_unshuffle(x: torch.Tensor, idx_unshuffle: torch.Tensor) -> torch.Tensor:
    """Undo :func:`batch_shuffle`: return the rows that belong to this process's original samples.

    Shape: (B, ...) -> (B, ...).
    """
    ws = world_size()
    if ws == 1:
        return x[idx_unshuffle]
    x_all = concat_all_gather(x)
    mine = idx_unshuffle.view(ws, -1)[rank()]
    return x_all[mine]


@torch.no_grad()
def dequeue_and_enqueue(queue: torch.Tensor, queue_ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """MoCo queue update in place: write the keys of all processes at ``queue_ptr`` (wrapping), advance it.

    Shape: queue (dim, K), queue_ptr (1,) int64, keys (B, dim) on this process.
    """
    keys = concat_all_gather(keys)  # (world_size * B, dim)
    k_size = queue.shape[1]
    n = keys.shape[0]
    if n > k_size:
        raise ValueError(f"global batch {n} is larger than the queue K={k_size}")
    ptr = int(queue_ptr[0])
    cols = (ptr + torch.arange(n, device=queue.device)) % k_size  # wraps past the end
    queue[:, cols] = keys.T.to(queue.dtype)
    queue_ptr[0] = (ptr + n) % k_size


def init_memory_bank(n_data: int, dim: int) -> torch.Tensor:
    """CMC's memory-bank init: uniform in [-s, s], s = 1 / sqrt(dim / 3). Shape: (n_data, dim)."""
    stdv = 1.0 / (dim / 3) ** 0.5
    return torch.rand(n_data, dim) * (2 * stdv) - stdv


@torch.no_grad()
def update_memory_bank(bank: torch.Tensor, idx: torch.Tensor, feats: torch.Tensor, momentum: float) -> None:
    """CMC's update ``bank[i] = normalize(momentum bank[i] + (1 - momentum) f_i)`` for all processes' rows.

    Shape: bank (n_data, dim), idx (B,) int64, feats (B, dim).
    """
    idx = concat_all_gather(idx)
    feats = concat_all_gather(feats.detach())
    mixed = bank[idx] * momentum + feats.to(bank.dtype) * (1 - momentum)
    bank[idx] = F.normalize(mixed, dim=1)


def sample_negatives(n_data: int, batch_size: int, K: int, device: torch.device) -> torch.Tensor:
    """K uniform negative indices per sample (CMC draws them uniformly from the whole dataset).

    Shape: -> (batch_size, K) int64.
    """
    return torch.randint(0, n_data, (batch_size, K)).to(device)
