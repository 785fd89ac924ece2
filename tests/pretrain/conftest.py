"""Fixtures of the pretraining tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test: the CI machine has 2 cores shared with other jobs, and OpenMP's spin-waits
    made multi-threaded CPU steps 3-5x slower under load (measured: a MoCo R18 step 0.6 s vs 3.0 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
