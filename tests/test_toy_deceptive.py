"""The deceptive toy (Chebykin et al., TMLR 2025, §5.2): the greedy schedule wins every single ready interval and loses
at the end; the closed forms agree with the simulation; a PBT run of the domain trains and resumes from its
checkpoints."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from experiments.toy_deceptive import task as td
from pbt.experiment import run_experiment
from pbt.results import Results
from pbt.space import ConfigError
from repro.domains import load_domain

REFERENCE = td.PROFILES["paper"]  # 1000 steps, segments and ready intervals of 20: the reference's settings


def with_pbt(config: td.Config, **changes) -> td.Config:
    return replace(config, pbt=replace(config.pbt, **changes))


def test_the_profiles_keep_the_reference_settings() -> None:
    pbt = REFERENCE.pbt
    assert (pbt.population, pbt.budget_steps, pbt.ready_every, REFERENCE.segment_steps) == (22, 1000, 20, 20)
    assert (pbt.truncation_fraction, pbt.perturb_factors, pbt.explore) == (0.25, (0.5, 2.0), "perturb")
    assert td.SPACE["h"].low == 1e-4 and td.SPACE["h"].high == 1.1
    assert load_domain("toy_deceptive").make_task is td.make_task


def test_the_best_schedule_ends_ahead_of_the_greedy_one_by_the_closed_form_margin() -> None:
    greedy = td.final_objective(td.greedy_schedule(REFERENCE), REFERENCE)
    best = td.final_objective(td.best_schedule(REFERENCE), REFERENCE)
    margin = td.best_final_objective(REFERENCE) - td.greedy_final_objective(REFERENCE)
    assert best - greedy == pytest.approx(margin, abs=1e-12)
    # the numbers the module's docstring gives: the linear decay nearly reaches the optimum 1.2, greedy stalls
    assert (round(greedy, 4), round(best, 4)) == (0.8270, 1.1979)
    # and the smoke profile, 10 segments, still deceives
    smoke = td.PROFILES["smoke"]
    assert td.best_final_objective(smoke) - td.greedy_final_objective(smoke) == pytest.approx(0.0489, abs=1e-4)


@pytest.mark.parametrize("budget, segment", [(1000, 20), (200, 20), (210, 20), (300, 7)])
def test_the_closed_forms_equal_the_simulation(budget: int, segment: int) -> None:
    config = replace(with_pbt(REFERENCE, budget_steps=budget, ready_every=segment), segment_steps=segment)
    assert td.final_objective(td.greedy_schedule(config), config) == pytest.approx(
        td.greedy_final_objective(config), abs=1e-12
    )
    assert td.final_objective(td.best_schedule(config), config) == pytest.approx(
        td.best_final_objective(config), abs=1e-12
    )


def test_greedy_wins_every_single_ready_interval() -> None:
    """What makes the toy deceptive: from wherever the best schedule has brought a member, one more ready interval
    with the greedy h = 0 scores higher than following the linear decay, and at least as high as any other h."""
    task = td.make_task(REFERENCE)
    length = REFERENCE.segment_steps
    state = task.make({"h": 1.0}, seed=0)
    grid = [i / 20 * 1.1 for i in range(21)]  # [0, 1.1]
    for k in range(0, 45, 4):  # the segment the member is about to train
        while state["steps"] < k * length:
            task.train(state, {"h": td.target(state["steps"] // length, REFERENCE)}, length)

        def after_one_interval(h: float) -> float:
            trial = copy.deepcopy(state)
            task.train(trial, {"h": h}, length)
            return task.evaluate(trial).score

        greedy = after_one_interval(td.greedy_schedule(REFERENCE)[k * length])
        following = after_one_interval(td.best_schedule(REFERENCE)[k * length])
        assert greedy > following
        assert greedy >= max(after_one_interval(h) for h in grid)
    # the first interval's numbers, from θ0 = 0.9: Q = 0.4988 greedy against 0.4523 following the decay
    fresh = task.make({"h": 1.0}, seed=0)
    task.train(fresh, {"h": 0.0}, length)
    assert round(task.evaluate(fresh).score, 4) == 0.4988


def test_training_is_deterministic_and_the_same_in_any_chunks() -> None:
    task = td.make_task(REFERENCE)
    whole, pieces = task.make({"h": 0.5}, seed=0), task.make({"h": 0.5}, seed=7)
    for h in (0.9, 0.3, 0.6):
        task.train(whole, {"h": h}, 40)
        for steps in (7, 13, 20):  # eval_every below ready_every splits an interval into several train calls
            task.train(pieces, {"h": h}, steps)
    assert whole == pieces and len(whole["history"]) == 6


def test_schedule_distance_is_the_mean_absolute_difference_over_steps() -> None:
    greedy, best = td.greedy_schedule(REFERENCE), td.best_schedule(REFERENCE)
    assert len(greedy) == len(best) == 1000
    # the mean of the 50 targets 1 − k/50
    assert td.schedule_distance(greedy, best) == pytest.approx(1 - 49 / 100)
    assert td.known_distances(best, REFERENCE) == {"greedy": pytest.approx(0.51), "best": 0.0}
    with pytest.raises(ValueError):
        td.schedule_distance(greedy, best[:-1])


def test_the_initial_population_is_drawn_from_h_init_by_the_seed() -> None:
    drawn = td.initial_hparams(REFERENCE)
    assert len(drawn) == 22 and all(0.9 <= m["h"] <= 1.1 for m in drawn)
    assert td.initial_hparams(REFERENCE) == drawn != td.initial_hparams(with_pbt(REFERENCE, seed=1))
    with pytest.raises(ConfigError, match="segment_steps"):
        replace(REFERENCE, segment_steps=0)


def test_a_short_pbt_run_finishes_with_finite_scores_its_schedules_explain(tmp_path: Path) -> None:
    config = with_pbt(REFERENCE, population=4, budget_steps=120)
    run_experiment("experiments.toy_deceptive.task", config, tmp_path / "run", domain="toy_deceptive")
    results = Results(tmp_path / "run")
    assert [m.step for m in results.members] == [120] * 4
    assert all(math.isfinite(m.score) and 0.0 < m.score < 1.2 for m in results.members)
    # a member's score is what its lineage's schedule gives when replayed through the dynamics
    full = [m for m in results.members if m.weight_age == config.horizon]
    assert full
    for member in full:
        schedule = td.per_step(results.discovered_schedule(member.id), config)
        assert td.final_objective(schedule, config) == pytest.approx(member.score, abs=1e-12)


def test_load_refuses_a_checkpoint_that_is_not_one(tmp_path: Path) -> None:
    task = td.make_task(REFERENCE)
    state = task.make({"h": 1.0}, seed=0)
    task.train(state, {"h": 1.0}, 30)
    path = tmp_path / "member.json"
    task.save(state, path)
    assert task.load(path) == state
    for bad in (
        {**state, "seed": 0},
        {k: v for k, v in state.items() if k != "history"},
        {**state, "history": state["history"][:1]},
        [state],
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="not a deceptive-toy checkpoint"):
            task.load(path)
