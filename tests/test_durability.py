"""Durable decisions: a serial run killed at any point and resumed gives the same events and scores as an
uninterrupted one, because a ready member's pending decision (and the serial round in progress) is stored in the
same transaction as the interval that made it ready. In async mode (worker processes), no ready decision is lost."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.toy.task import Config as ToyConfig
from pbt.experiment import run_experiment
from pbt.store import StoreReader
from pbt.store_writer import Store
from tests.conftest import cli, cli_environment
from tests.test_golden import run_log

TOY = "experiments.toy.task"


class Killed(BaseException):
    """Stands for a kill -9 right after a commit: nothing after it runs."""


def toy_config(**pbt: object) -> ToyConfig:
    base = ToyConfig()
    return dataclasses.replace(
        base, pbt=dataclasses.replace(base.pbt, population=6, seed=7, budget_steps=48, explore="perturb", **pbt)
    )


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
        assert StoreReader(out).meta()["status"] == "interrupted"
    return run_experiment(TOY, config, out, domain="toy", resume=True)


@pytest.mark.parametrize("exploit", ["truncation", "tournament"])
def test_serial_run_killed_anywhere_resumes_to_the_same_events_and_scores(tmp_path: Path, exploit: str) -> None:
    config = toy_config(exploit=exploit)
    counted: list[int] = []
    reference = run_log(
        run_experiment(TOY, config, tmp_path / "whole", domain="toy", listeners=[lambda *_: counted.append(1)])
    )
    commits = len(counted)
    assert len(reference["events"]) > 10 and commits > 24
    # 12 single kills spread over the run, each in its own directory, so each kill point is tested on its own
    for i, after in enumerate(range(3, commits, max(1, commits // 12))):
        resumed = run_with_kills(tmp_path / f"killed-{i}", config, [after])
        assert run_log(resumed) == reference, f"killed after commit {after}"
    # and several kills in one run
    assert run_log(run_with_kills(tmp_path / "many", config, [5, 1, 17, 2, 30])) == reference


def test_serial_pb2_run_killed_anywhere_resumes_to_the_same_events_and_scores(tmp_path: Path) -> None:
    """PB2 learns from the intervals and explores in the store, so a resumed run fits the same data (every member
    explores at every ready point here, so each round's later deciders also see the values given earlier in it)."""
    pytest.importorskip("sklearn")
    config = toy_config(strategy="pb2", explore_every_ready=True)
    counted: list[int] = []
    reference = run_log(
        run_experiment(TOY, config, tmp_path / "whole", domain="toy", listeners=[lambda *_: counted.append(1)])
    )
    commits = len(counted)
    assert sum(set((e["ops"] or {}).values()) == {"pb2"} for e in reference["events"]) > 20
    for i, after in enumerate(range(5, commits, max(1, commits // 5))):
        assert run_log(run_with_kills(tmp_path / f"killed-{i}", config, [after])) == reference, f"after {after}"
    assert run_log(run_with_kills(tmp_path / "many", config, [7, 1, 23, 2, 40])) == reference


def test_serial_fire_run_killed_anywhere_resumes_to_the_same_events_and_scores(tmp_path: Path) -> None:
    """FIRE's assignments, curves and copies are read from the store's events and scores, and its evaluators decide
    last in every round, also in a resumed one."""
    config = toy_config(strategy="fire", fire_evaluators=2)
    counted: list[int] = []
    reference = run_log(
        run_experiment(TOY, config, tmp_path / "whole", domain="toy", listeners=[lambda *_: counted.append(1)])
    )
    commits = len(counted)
    assert sum((e["ops"] or {}).get("fire") == "evaluate" for e in reference["events"]) > 5
    for i, after in enumerate(range(5, commits, max(1, commits // 5))):
        assert run_log(run_with_kills(tmp_path / f"killed-{i}", config, [after])) == reference, f"after {after}"
    assert run_log(run_with_kills(tmp_path / "many", config, [7, 1, 23, 2, 40])) == reference


def test_a_kill_between_an_interval_and_its_decision_keeps_the_decision(tmp_path: Path) -> None:
    config = toy_config()
    out = tmp_path / "run"
    # the first publish of a member made ready by its interval: stop right there
    with pytest.raises(Killed):
        run_experiment(TOY, config, out, domain="toy", listeners=[killer(1)])
    store = StoreReader(out)
    due = [m for m in store.members() if m.decision_due is not None]
    assert due and due[0].step == config.pbt.ready_every and due[0].decision_due == 0
    assert store.meta()["serial_round"]["attempted"] == [0]
    store.close()


REPO = Path(__file__).resolve().parents[1]
# Four members on two workers: a member made ready waits for a worker (while the other two train an interval, 0.4 s
# here) before it decides, which is the window the kill aims at. Every decision explores (--explore-every-ready), so
# each one leaves an event to find.
ASYNC_RUN = [
    "run",
    "toy",
    "--executor",
    "local",
    "--workers",
    "2",
    "--population",
    "4",
    "--budget-steps",
    "40",
    "--ready-every",
    "4",
    "--eval-every",
    "4",
    "--seconds-per-step",
    "0.1",
    "--exploit",
    "none",
    "--explore-every-ready",
    "--quiet",
]


def due_members(run_dir: Path) -> dict[int, int]:
    """{member: its step} of the members whose ready decision is pending in the store (read-only, while it runs)."""
    try:
        db = sqlite3.connect(f"file:{run_dir / 'pbt.sqlite'}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:  # not created yet
        return {}
    try:
        return dict(db.execute("SELECT id, step FROM member WHERE decision_due IS NOT NULL").fetchall())
    except sqlite3.OperationalError:  # the run's creation is not in place yet
        return {}
    finally:
        db.close()


def test_async_run_killed_with_a_decision_pending_makes_it_on_resume(tmp_path: Path) -> None:
    for attempt in range(5):  # a kill that comes after every pending decision was made is tried again
        run_dir = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "repro.cli", *ASYNC_RUN, "--out", str(run_dir)],
            cwd=REPO,
            env=cli_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while not due_members(run_dir) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before any member was ready: {proc.stderr.read()}"
        os.killpg(proc.pid, signal.SIGKILL)  # the controller and its workers
        proc.wait()
        due = due_members(run_dir)  # committed with the interval that made the member ready: survives the kill
        if due:
            break
    else:
        pytest.fail("no kill landed while a decision was pending")
    store = StoreReader(run_dir)
    assert store.state()[0] == "interrupted"
    explored_before = {(e.member, e.step) for e in store.events("explore")}
    store.close()
    assert not set(due.items()) & explored_before  # pending: not made yet
    cli(["resume", str(run_dir), "--quiet"], timeout=300)
    store = StoreReader(run_dir)
    explored = [(e.member, e.step) for e in store.events("explore")]
    for member, step in due.items():
        assert explored.count((member, step)) == 1, f"member {member}'s decision at step {step} was lost"
    assert all(m.decision_due is None and m.status == "done" for m in store.members())
    store.close()
