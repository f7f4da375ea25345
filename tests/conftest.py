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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module whatever ``TEST_THREADS`` says (tiny tensors: threads only
    contend on a shared machine); use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def global_rng_untouched(request):
    """Fail any test during which torch's global RNG moved: library code draws only from the
    generators it is given (DESIGN §2). A test that seeds or draws from it on purpose (deepinv's own
    code does) says so with ``@pytest.mark.global_rng``."""
    if request.node.get_closest_marker("global_rng"):
        yield
        return
    before = torch.random.get_rng_state()
    yield
    if not torch.equal(before, torch.random.get_rng_state()):
        pytest.fail("torch's global RNG was drawn from or seeded during this test; pass a torch.Generator "
                    "(or mark the test @pytest.mark.global_rng if that is its purpose)", pytrace=False)
