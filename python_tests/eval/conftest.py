"""Eval tests train small probes: one intra-op thread (see python_tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
