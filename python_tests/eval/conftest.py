"""Eval tests train small probes: one intra-op thread avoids OpenMP spin-waits on
the shared 2-core CI machines (a 300-step MLP probe went from ~50 s to ~1 s)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
