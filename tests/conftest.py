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
    return [sys.executable, "-m", "pbt.cli"]
