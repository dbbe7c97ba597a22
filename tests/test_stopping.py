"""Stopping criteria: a stop score or a time limit ends a run (PBT or a baseline) before its budget, with the stop
recorded, every member's weights trained exactly its steps, and compare reporting the compute each run spent."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import experiments.toy.task as toy
from baselines import baseline_config, random_search
from pbt.experiment import run_experiment
from pbt.store import CKPT_DIR, StoreReader
from repro.compare import compare, step_on_grid
from repro.compare.figures import plot_score_vs_compute
from tests.conftest import cli, only_line
from tests.fake_tasks import Config as FakeConfig

FAKE = "tests.fake_tasks"


def fake(**pbt_overrides) -> FakeConfig:
    config = FakeConfig()
    return dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, **pbt_overrides))


def assert_trained_exactly_their_steps(store: StoreReader) -> None:
    """No member trained past its recorded step: its checkpoint's weights counted exactly its weight age, its step."""
    for m in store.members():
        trained = json.loads((store.run_dir / CKPT_DIR / m.checkpoint).read_text().splitlines()[0])["steps"]
        assert trained == m.weight_age == m.step, m


def assert_stopped_by_score(store: StoreReader, stop_score: float) -> dict:
    meta, compute = store.meta(), store.compute()
    stop = meta["stop"]
    assert meta["status"] == "finished" and stop["reason"] == "stop_score" and stop["stop_score"] == stop_score
    assert stop["score"] >= stop_score and (stop["member"], stop["step"], stop["score"]) in {
        (s.member, s.step, s.score) for s in store.scores()
    }
    assert compute["used_steps"] == stop["member_steps"] < compute["planned_steps"]  # serial: nothing was in flight
    assert not any(m.status == "done" for m in store.members())
    assert_trained_exactly_their_steps(store)
    return stop


def test_a_stop_score_stops_a_serial_pbt_run_early(tmp_path: Path) -> None:
    store = run_experiment(FAKE, fake(stop_score=0.5), tmp_path / "run")
    stop = assert_stopped_by_score(store, 0.5)
    scores = store.scores()  # in the order they were recorded
    first = next(s for s in scores if s.score >= 0.5)
    assert (first.member, first.step) == (stop["member"], stop["step"]) == (scores[-1].member, scores[-1].step)
    assert store.members()[stop["member"]].step == stop["step"]  # the interval that reached it was the last one


def test_a_stop_score_stops_random_search_too(tmp_path: Path) -> None:
    config, _ = baseline_config(None, fake(stop_score=0.3), "random_search")
    store = random_search(FAKE, config, tmp_path / "rs")
    assert_stopped_by_score(store, 0.3)
    assert not store.events("exploit") and not store.events("explore")


def test_a_time_limit_stops_worker_processes_within_the_limit_and_one_interval(tmp_path: Path) -> None:
    # intervals of 10 steps at 0.01 s (x 0.5 to 2): at most 0.2 s each; the whole budget would take about 8 s. The
    # limit counts the workers' start too, which a busy machine makes slow: hence the limit of 3 s and the slack.
    limit, longest_interval, slack = 3.0, 0.2, 1.0
    config = fake(
        population=4, budget_steps=400, executor="local", workers=2, exploit="none", explore="none", time_limit=limit
    )
    store = run_experiment(FAKE, dataclasses.replace(config, seconds_per_step=0.01), tmp_path / "run")
    meta, compute = store.meta(), store.compute()
    stop = meta["stop"]
    assert meta["status"] == "finished" and stop["reason"] == "time_limit" and stop["time_limit"] == limit
    assert limit <= stop["wall_seconds"] <= limit + longest_interval + slack  # checked as each interval comes back
    assert meta["wall_seconds"] <= stop["wall_seconds"] + longest_interval + slack  # those running finish, no more
    assert 0 < compute["used_steps"] < compute["planned_steps"]
    assert compute["used_steps"] >= stop["member_steps"]  # the intervals in flight at the stop were recorded
    assert_trained_exactly_their_steps(store)


def test_resume_leaves_a_stopped_run_finished_unless_a_larger_time_limit_continues_it(tmp_path: Path) -> None:
    scored = run_experiment(FAKE, fake(stop_score=0.5), tmp_path / "scored")
    before = (scored.meta(), scored.members())
    again = run_experiment(FAKE, fake(stop_score=0.5), tmp_path / "scored", resume=True)
    assert (again.meta(), again.members()) == before  # finished: nothing trains, nothing is rewritten

    # a serial run of 4 x 40 steps at 0.01 s a step (about 1.6 s), stopped by a limit of 0.3 s
    config = dataclasses.replace(fake(time_limit=0.3), seconds_per_step=0.01)
    timed = run_experiment(FAKE, config, tmp_path / "timed")
    steps = [m.step for m in timed.members()]
    assert timed.meta()["stop"]["reason"] == "time_limit" and sum(steps) < 160
    same = cli(["resume", str(tmp_path / "timed"), "--task", FAKE, "--quiet"])
    line = next(line for line in same.stdout.splitlines() if line.startswith("stopped: "))
    assert "time limit 0.3 s reached" in line and "--time-limit SECONDS` with more than 0.3 (or 0: no limit)" in line
    assert [m.step for m in StoreReader(tmp_path / "timed").members()] == steps
    status = cli(["status", str(tmp_path / "timed")])
    assert "— finished" in status.stdout and line in status.stdout

    cli(["resume", str(tmp_path / "timed"), "--task", FAKE, "--quiet", "--time-limit", "0"])
    store = StoreReader(tmp_path / "timed")
    assert "stop" not in store.meta() or store.meta()["stop"] is None
    assert store.meta()["status"] == "finished" and all(m.step == 40 and m.status == "done" for m in store.members())


def test_compare_reports_the_compute_a_stopped_run_spent(tmp_path: Path) -> None:
    base = toy.Config()
    config = dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, budget_steps=60, stop_score=0.6))
    run_experiment(
        "experiments.toy.task", config, tmp_path / "pbt", domain="toy", initial_hparams=toy.initial_hparams(config)
    )
    rs_config, initial = baseline_config(
        None, dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, stop_score=None)), "random_search"
    )
    run_experiment(
        "experiments.toy.task",
        rs_config,
        tmp_path / "rs",
        method="random_search",
        domain="toy",
        initial_hparams=initial,
    )
    comparison = compare([tmp_path / "pbt", tmp_path / "rs"], tmp_path / "cmp", figures=False)
    pbt, rs = comparison.rows
    assert pbt.used_steps < pbt.planned_steps == rs.used_steps == rs.planned_steps == 120
    assert not comparison.equal_compute and comparison.planned_equal
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "**Unequal compute spent**" in markdown and "| finished (stopped) |" in markdown
    assert f"{tmp_path / 'pbt'}: stopped early, stop score 0.6 reached by member" in markdown
    assert f"at {int(pbt.used_steps)} member-steps" in markdown
    statuses = [line.split(",")[16] for line in (tmp_path / "cmp" / "comparison.csv").read_text().splitlines()[1:]]
    assert statuses[0].startswith('"finished (stopped: stop score 0.6') and statuses[-1] == "finished"

    drawn = plot_score_vs_compute(comparison.runs, comparison.metric, tmp_path / "cmp")  # ends PBT with an X
    assert (tmp_path / "cmp" / drawn[0]).read_bytes().startswith(b"\x89PNG")


def test_a_run_that_stopped_early_has_no_score_beyond_its_spent_compute() -> None:
    grid = np.array([0.0, 10.0, 40.0, 50.0])
    assert step_on_grid([10, 40], [1.0, 2.0], grid).tolist()[1:] == [1.0, 2.0, 2.0]
    assert math.isnan(step_on_grid([10, 40], [1.0, 2.0], grid, stopped_early=True)[-1])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--time-limit", "-1"], "time_limit must be >= 0 seconds (0: no limit), got -1"),
        (["--stop-score", "nan"], "stop_score must be a finite number, got nan"),
    ],
)
def test_bad_stopping_values_are_refused_in_one_line(flags: list[str], message: str, tmp_path: Path) -> None:
    proc = cli(["run", "toy", *flags, "--out", str(tmp_path / "r")], check=False)
    assert proc.returncode == 2 and message in only_line(proc.stderr) and not (tmp_path / "r").exists()


def test_a_stop_score_under_mode_min_is_reached_from_above(tmp_path: Path) -> None:
    """Minimising, a score reaches the stop score at or below it: the stop is the first evaluation that low."""
    full = run_experiment(FAKE, fake(), tmp_path / "full")
    scores = sorted(s.score for s in full.scores())
    stop_score = scores[len(scores) // 4]  # a quarter of the evaluations are at or below it
    store = run_experiment(FAKE, fake(stop_score=stop_score, mode="min"), tmp_path / "run")
    stop = store.meta()["stop"]
    first = next(s for s in store.scores() if s.score <= stop_score)
    assert stop["reason"] == "stop_score" and (stop["member"], stop["step"]) == (first.member, first.step)
    assert all(s.score > stop_score for s in store.scores() if s.time < first.time)
