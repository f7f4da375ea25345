"""Shared pytest set-up.

The CI and development machines are small and shared: one intra-op thread avoids the heavy slow-down
that thread contention causes on tiny tensors (set ``TEST_THREADS`` to change it).
"""
import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("TEST_THREADS", "1")))


@pytest.fixture
def generator() -> torch.Generator:
    """A CPU generator with a fixed seed (library code never uses the global RNG)."""
    return torch.Generator().manual_seed(1234)
