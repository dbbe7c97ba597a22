import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for running the CLI in a subprocess from the repository root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def pbt_repro() -> list[str]:
    return [sys.executable, "-m", "repro.cli"]


@pytest.fixture
def one_torch_thread():
    """In-process tests use one torch thread, as each worker does: tiny models only lose by sharing 2 cores, badly
    so on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
