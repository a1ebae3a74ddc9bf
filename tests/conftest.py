"""Shared test setup: seeded generators, the `cuda` marker's skip rule, small helpers."""
from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

# Test this checkout's fastdream (with its in-place built _C), whatever else is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


def _cuda_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    from fastdream import _backend

    return _backend.has_cuda_kernels()


CUDA_READY = _cuda_ready()


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU and fastdream._C built with CUDA kernels")
    for item in items:
        if "cuda" in item.keywords and not CUDA_READY:
            item.add_marker(skip_cuda)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Each test starts from the same seeds, so a failure reproduces."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def cuda_device() -> torch.device:
    return torch.device("cuda")


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread: tiny ops gain nothing from threads but barrier waits on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def no_network(monkeypatch):
    """Offline hub, and any socket connection fails the test (the shipped priors must load with no network)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("the shipped prior tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
