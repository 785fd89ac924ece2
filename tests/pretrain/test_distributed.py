"""Gather, shuffle-BN, the queue and per-process seeds with 2 CPU processes (gloo), compared to a single-process
reference."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mixbench.base import dist as base_dist
from mixbench.pretrain.negatives import batch_shuffle, batch_unshuffle, concat_all_gather, dequeue_and_enqueue

B, C = 4, 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2 * B, C, generator=g)  # the global batch: rank r holds rows [r*B, (r+1)*B)


def _reference():
    """One process doing what 2 processes do: shuffle the global batch with the same permutation, BN each
    half separately, unshuffle."""
    x_all = _data()
    perm = torch.randperm(2 * B, generator=torch.Generator().manual_seed(5))
    shuffled = x_all[perm]
    halves = [F_bn(shuffled[:B]), F_bn(shuffled[B:])]
    return torch.cat(halves)[torch.argsort(perm)]


def F_bn(x):
    return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        x = _data()[rank * B : (rank + 1) * B]
        gathered = concat_all_gather(x)
        g = torch.Generator().manual_seed(5)
        x_sh, idx_un = batch_shuffle(x, generator=g)  # rank 0's permutation is broadcast
        y = batch_unshuffle(F_bn(x_sh), idx_un)
        queue, ptr = torch.zeros(C, 16), torch.zeros(1, dtype=torch.long)
        dequeue_and_enqueue(queue, ptr, x)
        torch.manual_seed(7)  # what mmengine's randomness.seed does on every process before the model is built
        seeds = [base_dist.process_seed(11), base_dist.process_seed(None)]
        torch.save({"gathered": gathered, "bn": y, "queue": queue, "ptr": ptr, "seeds": seeds,
                    "place": (base_dist.rank(), base_dist.world_size())}, f"{out_dir}/r{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_process_gather_shuffle_bn_and_queue(tmp_path):
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    outs = [torch.load(tmp_path / f"r{r}.pt") for r in range(2)]
    x_all = _data()
    ref = _reference()
    for r, out in enumerate(outs):
        torch.testing.assert_close(out["gathered"], x_all)
        torch.testing.assert_close(out["bn"], ref[r * B : (r + 1) * B])  # each rank gets its own samples back
        torch.testing.assert_close(out["queue"][:, : 2 * B], x_all.T)  # both ranks enqueue the global batch
        assert int(out["ptr"]) == 2 * B
        assert out["place"] == (r, 2)
        # a given seed and one drawn from torch's (equally seeded) generator, each offset by the rank
        drawn = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(7)))
        assert out["seeds"] == [11 + r, drawn + r]
    # shuffle-BN differs from per-process BN (otherwise the test would not see the shuffle)
    assert not torch.allclose(ref[:B], F_bn(x_all[:B]))


def test_single_process_is_a_no_op():
    assert (base_dist.rank(), base_dist.world_size(), base_dist.process_seed(3)) == (0, 1, 3)
    x = _data()
    assert concat_all_gather(x) is x
    sh, idx = batch_shuffle(x)
    torch.testing.assert_close(batch_unshuffle(sh, idx), x)
