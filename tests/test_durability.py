"""Durable decisions: a serial run killed at any point and resumed gives the same events and scores as an
uninterrupted one, because a ready member's pending decision (and the serial round in progress) is stored in the
same transaction as the interval that made it ready."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from experiments.toy.task import Config as ToyConfig
from pbt.controller import run_experiment
from pbt.store import Store
from tests.test_golden import run_log

TOY = "experiments.toy.task"


class Killed(BaseException):
    """Stands for a kill -9 right after a commit: nothing after it runs."""


def toy_config(**pbt: object) -> ToyConfig:
    base = ToyConfig()
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, population=6, seed=7, budget_steps=48,
                                                             explore="perturb", **pbt))


def killer(after: int):
    commits = 0

    def listener(member, scores, events) -> None:
        nonlocal commits
        commits += 1
        if commits == after:
            raise Killed

    return listener


def run_with_kills(out: Path, config: ToyConfig, kills: list[int]) -> Store:
    """Run, killing the controller after the given numbers of commits (counted within each sitting)."""
    for after in kills:
        with pytest.raises(Killed):
            run_experiment(TOY, config, out, domain="toy", resume=True, listeners=[killer(after)])
        assert Store.open_existing(out).meta()["status"] == "interrupted"
    return run_experiment(TOY, config, out, domain="toy", resume=True)


@pytest.mark.parametrize("exploit", ["truncation", "tournament"])
def test_serial_run_killed_anywhere_resumes_to_the_same_events_and_scores(tmp_path: Path, exploit: str) -> None:
    config = toy_config(exploit=exploit)
    counted: list[int] = []
    reference = run_log(run_experiment(TOY, config, tmp_path / "whole", domain="toy",
                                       listeners=[lambda *_: counted.append(1)]))
    commits = len(counted)
    assert len(reference["events"]) > 10 and commits > 24
    # 12 single kills spread over the run, each in its own directory, so each kill point is tested on its own
    for i, after in enumerate(range(3, commits, max(1, commits // 12))):
        resumed = run_with_kills(tmp_path / f"killed-{i}", config, [after])
        assert run_log(resumed) == reference, f"killed after commit {after}"
    # and several kills in one run
    assert run_log(run_with_kills(tmp_path / "many", config, [5, 1, 17, 2, 30])) == reference


def test_a_kill_between_an_interval_and_its_decision_keeps_the_decision(tmp_path: Path) -> None:
    config = toy_config()
    out = tmp_path / "run"
    # the first publish of a member made ready by its interval: stop right there
    with pytest.raises(Killed):
        run_experiment(TOY, config, out, domain="toy", listeners=[killer(1)])
    store = Store.open_existing(out)
    due = [m for m in store.members() if m.decision_due is not None]
    assert due and due[0].step == config.pbt.ready_every and due[0].decision_due == 0
    assert store.meta()["serial_round"]["attempted"] == [0]
    store.close()
