"""A toy reproduction with several seeds and domain ``extra_results``, shared by the compare and report tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import experiments.toy as toy_package
import experiments.toy.task as toy
from repro.compare import load_run
from repro.reproduce import reproduce


def extra_results(run_dir: Path) -> dict[str, Any]:
    """Numbers that follow the run's best final score: ``test.q`` (higher is better) and ``fid`` (lower is better,
    so PBT wins it exactly where it wins the best final score), a setting the same in every run, and one the same in
    both arms of a seed but not across seeds (``scorer.accuracy``, as a classifier trained anew per machine)."""
    run = load_run(run_dir)
    best = run.best_member
    assert best is not None and best.score is not None
    return {
        "member": best.id,
        "test": {"q": best.score + 0.01, "beam_size": 4},
        "fid": 1.0 - best.score,
        "scorer": {"accuracy": 0.8 + run.seed / 100},
    }


def reproduce_toy(root: Path, seeds: int = 3, steps: int = 24) -> dict[str, Any]:
    """``reproduce("toy", ...)`` of ``seeds`` seeds into ``root/results`` (runs in ``root/runs``), with the toy
    given ``extra_results``; returns the summary."""
    base = toy.Config()
    config = dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, budget_steps=steps))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(toy_package, "DOMAIN", dataclasses.replace(toy_package.DOMAIN, extra_results=extra_results))
        summary = reproduce("toy", config, "smoke", seeds=seeds, out=root / "results", runs=root / "runs")
    assert summary is not None
    return summary
