"""The committed results regenerate from the committed run stores: `reproduce` on finished runs trains nothing and
must give the same numbers and byte-identical figures as the files under results/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, cli

TOY = REPO / "results" / "toy"
FIXED = ("paired", "trains_faster", "figure_seed", "equal_compute", "metric", "domain", "profile", "best_schedule")


def numbers(arm: dict) -> dict:
    """An arm's summary without what a rerun may change: wall time (a re-read is not a re-run) and nothing else."""
    return {k: v for k, v in arm.items() if k != "compute"} | {
        "compute": {k: v for k, v in arm["compute"].items() if k != "wall_seconds"}
    }


@pytest.mark.skipif(not (TOY / "runs").is_dir(), reason="no committed toy run stores")
def test_committed_toy_results_regenerate_from_their_stores(tmp_path: Path) -> None:
    committed = json.loads((TOY / "summary.json").read_text())
    work = tmp_path / "checkout"
    shutil.copytree(TOY / "runs", work / "results" / "toy" / "runs")
    before = {p.relative_to(work): p.read_bytes() for p in (work / "results").rglob("pbt.sqlite")}
    command = committed["provenance"]["command"].split()
    assert command[:3] == ["pbt-repro", "reproduce", "toy"]
    args = [a if a != "results/toy" else "out" for a in command[3:]]  # the same runs, a fresh results folder
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "WANDB_MODE": "disabled"}
    cli(["reproduce", "toy", *args], env, cwd=work, timeout=300)
    fresh = json.loads((work / "out" / "summary.json").read_text())
    for key in FIXED:
        assert fresh.get(key) == committed.get(key), key
    for arm in ("pbt", "random_search"):
        assert numbers(fresh[arm]) == numbers(committed[arm]), arm
    for files in committed["figures"].values():
        for name in files:
            assert (work / "out" / name).read_bytes() == (TOY / name).read_bytes(), name
    assert (work / "out" / "best_schedule.json").read_bytes() == (TOY / "best_schedule.json").read_bytes()
    after = {p.relative_to(work): p.read_bytes() for p in (work / "results").rglob("pbt.sqlite")}
    assert after == before  # reading the stores did not change them
