"""FIRE PBT (``pbt.fire``): its split, its curve comparisons, its decisions, and a run's fairness and equal compute."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from scipy.stats import binomtest

from experiments.toy.task import Config as ToyConfig
from pbt import fire
from pbt.config import PBTConfig
from pbt.experiment import run_experiment
from pbt.rows import Event, EventKind, MemberRow
from pbt.space import ConfigError, LogUniform
from pbt.store import StoreReader
from repro.progress import member_table
from tests.fake_tasks import Config as FakeConfig


def test_a_population_of_8_is_3_greedy_3_parents_and_2_evaluators() -> None:
    roles = fire.split(PBTConfig(population=8, strategy="fire"))
    assert (list(roles.greedy), list(roles.parents), list(roles.evaluators)) == ([0, 1, 2], [3, 4, 5], [6, 7])
    odd = fire.split(PBTConfig(population=9, strategy="fire", fire_evaluators=2))
    assert (len(odd.greedy), len(odd.parents), len(odd.evaluators)) == (4, 3, 2)


@pytest.mark.parametrize(
    "settings",
    [
        {"population": 5, "fire_evaluators": 2},
        {"population": 8, "fire_evaluators": 0},
        {"population": 8, "fire_p_value": 1.0},
    ],
)
def test_a_fire_population_too_small_to_split_is_refused(settings: dict) -> None:
    with pytest.raises(ConfigError, match="fire"):
        PBTConfig(strategy="fire", **settings)


def curve(values: list[float], start: int = 1) -> fire.Curve:
    return tuple((start + i, v) for i, v in enumerate(values))


@pytest.mark.parametrize("wins", [0, 3, 6, 7])
def test_the_binomial_test_is_scipys_one_sided_test(wins: int) -> None:
    child = curve([float(i) for i in range(8)])
    mine = curve([0.0] + [v + (0.5 if i <= wins else -0.5) for i, (_, v) in enumerate(child) if i > 0])
    i, j, n = fire.overlap(fire.smooth([v for _, v in mine]), fire.smooth([v for _, v in child]))
    assert n >= 7  # the curves start close, so they overlap nearly everywhere
    above = sum(x > y for (_, x), (_, y) in zip(mine[i : i + n], child[j : j + n]))
    assert fire.binomial_p(mine, child) == pytest.approx(binomtest(above, n, alternative="greater").pvalue)


def test_a_curve_that_improves_faster_from_the_same_score_has_the_better_score_difference() -> None:
    slow = curve([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    fast = curve([0.25, 0.45, 0.65, 0.85, 1.05, 1.25])  # starts where slow is between its 3rd and 4th point
    assert fire.overlap(fire.smooth([v for _, v in slow]), fire.smooth([v for _, v in fast])) is not None
    assert fire.best_score_difference(fast, slow) > 0 > fire.best_score_difference(slow, fast)
    below = curve([-2.0, -1.9, -1.8])
    assert fire.best_score_difference(below, slow) == 0.0  # never reaches slow's start: no evidence either way
    assert fire.binomial_p(below, slow) == 2.0 and fire.binomial_p(slow, below) == 0.0


def member(i: int, step: int = 14, score: float = 0.0, lr: float = 0.1) -> MemberRow:
    return MemberRow(
        id=i,
        seed=i,
        hparams={"lr": lr},
        step=step,
        score=score,
        checkpoint=f"c{i}",
        checksum=f"h{i}",
        weight_age=step,
        decision_due=step - 4,
    )


def test_a_greedy_member_adopts_the_weights_of_an_evaluator_whose_curve_beats_its_own() -> None:
    cfg = PBTConfig(population=8, strategy="fire", ready_every=4, budget_steps=100, exploit="none")
    members = [member(i, score=1.0 + 0.01 * i, lr=0.1 * (i + 1)) for i in range(8)]
    # evaluator 6 has trained parent 3's weights with member 0's hyperparameters since step 0 and, from about the same
    # score (member 0's third point), beats member 0 at 11 of the 12 points where their curves overlap (p = 13/4096)
    assign = Event(
        member=6, step=0, kind=EventKind.EXPLOIT, donor=3, donor_step=0, ops={"fire": "evaluate", "child": 0}
    )
    history = fire.History(
        copies=(assign,), scores={0: curve([0.1 * i for i in range(14)]), 6: curve([0.15 + 0.3 * i for i in range(14)])}
    )
    new, events = fire.decide(members[0], members, {"lr": LogUniform(0.01, 1.0)}, cfg, history, random.Random(0))
    assert [(e.kind, e.donor, e.ops) for e in events] == [(EventKind.EXPLOIT, 6, {"fire": "adopt"})]
    assert (new.checkpoint, new.weight_age, new.hparams) == ("c6", 14, {"lr": 0.1})  # its weights, its own h
    # the evaluator then stops, and takes the parent that has waited longest (4 or 5, never evaluated; 4 first), with
    # the hyperparameters of the best greedy member, which member 0 now is
    adopted = fire.History(copies=(assign, events[0]), scores=history.scores)
    members[0] = new
    _, evaluator_events = fire.decide(
        members[6], members, {"lr": LogUniform(0.01, 1.0)}, cfg, adopted, random.Random(0)
    )
    (reassigned,) = evaluator_events
    assert reassigned.ops == {"fire": "evaluate", "child": 0} and reassigned.donor == 4
    assert "its child adopted its weights" in reassigned.message


def toy_fire(**pbt: object) -> ToyConfig:
    base = ToyConfig()
    settings = {"population": 8, "strategy": "fire", "explore": "perturb", "budget_steps": 80, **pbt}
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, **settings))


def test_a_fire_run_copies_within_its_roles_at_the_copiers_step_and_spends_the_same_compute(tmp_path: Path) -> None:
    store = run_experiment("experiments.toy.task", toy_fire(seed=1), tmp_path / "run", domain="toy")
    roles = fire.split(toy_fire().pbt)
    copies = store.events(EventKind.EXPLOIT)
    kinds = {(e.ops or {}).get("fire") for e in copies}
    assert {"evaluate", "exploit"} <= kinds
    for e in copies:
        assert (e.weight_age, e.donor_step) == (e.step, e.step)  # a copy takes the donor's state at the copier's step
        what = e.ops["fire"]
        if what == "evaluate":
            assert e.member in roles.evaluators and e.donor in roles.parents and e.ops["child"] in roles.greedy
        elif what == "adopt":
            assert e.member in roles.greedy and e.donor in roles.evaluators
        else:  # each sub-population exploits within itself
            assert fire.split(toy_fire().pbt).role(e.member) == roles.role(e.donor) != "evaluator"
    for m in store.members():
        assert m.status == "done" and m.step == m.weight_age == 80
        assert json.loads((store.checkpoint_dir / m.checkpoint).read_text())["steps"] == 80
    assert store.compute()["used_steps"] == 8 * 80  # evaluators' training counts: the same member-steps as PBT
    table = member_table(StoreReader(store.run_dir)).splitlines()  # status: the strategy, and each member's role
    assert "toy / fire — finished" in table[0]
    assert [line.split()[5] for line in table[2:]] == ["greedy"] * 3 + ["parent"] * 3 + ["evaluator"] * 2


@pytest.mark.parametrize("seed", [0, 1])
def test_an_async_fire_run_with_uneven_intervals_copies_only_states_at_the_copiers_step(
    tmp_path: Path, seed: int
) -> None:
    cfg = FakeConfig(
        seconds_per_step=0.002,
        score="rate",
        pbt=PBTConfig(
            population=8,
            budget_steps=60,
            ready_every=5,
            workers=2,
            executor="local",
            seed=seed,
            strategy="fire",
            exploit="truncation",
            explore="perturb",
        ),
    )
    store = run_experiment("tests.fake_tasks", cfg, tmp_path / "run")
    copies = store.events(EventKind.EXPLOIT)
    assert any(e.ops["fire"] == "evaluate" for e in copies)
    for e in copies:
        assert (e.weight_age, e.donor_step) == (e.step, e.step)
    evaluated = {(e.member, e.step) for e in copies if e.ops["fire"] == "evaluate"}
    decided_after = {(e.member, e.step) for e in store.events() if e.member not in fire.split(cfg.pbt).evaluators}
    # an evaluator decided after every other member at its step: nothing of theirs at that step comes later
    order = [(e.member, e.step) for e in store.events()]
    for member_id, step in evaluated:
        later = order[order.index((member_id, step)) :]
        assert not [m for m in later if m in decided_after and m[1] == step]
    for m in store.members():
        assert m.weight_age == m.step == 60
    StoreReader(store.run_dir).close()


def test_a_fire_runs_best_schedule_replays_score_for_score(tmp_path: Path) -> None:
    """A replay follows the best member's discovered schedule from scratch; FIRE's copies (an evaluator taking a
    parent's weights with a greedy member's hyperparameters, a greedy member adopting an evaluator's weights) are
    part of that lineage, so on the deterministic toy the replay retraces the best member's scores exactly."""
    from pbt.lineage import training_spans
    from pbt.results import Results
    from repro.replay import replay

    config = toy_fire(seed=1, budget_steps=60, population=6)
    run_experiment("experiments.toy.task", config, tmp_path / "fire", domain="toy").close()
    source = Results(tmp_path / "fire")
    replay(tmp_path / "fire", tmp_path / "replay", population=2)
    replayed = Results(tmp_path / "replay")
    assert replayed.meta["config"]["pbt"]["strategy"] == "pbt"
    assert all(e.kind == "schedule" for e in replayed.events)  # it only follows the schedule
    by_member_step = {(s.member, s.step): s.score for s in StoreReader(tmp_path / "fire").scores()}
    segments = source.schedule()
    # the best member's weights came from a parent, through an evaluator, adopted by a greedy member
    roles = fire.split(config.pbt)
    assert [roles.role(s.member) for s in segments][:4] == ["parent", "parent", "evaluator", "greedy"]
    lineage_scores = {
        age_from + k: by_member_step[(s.member, s.start + k)]
        for s, (age_from, age_to) in zip(segments, training_spans(segments))
        for k in range(1, age_to - age_from + 1)
    }
    assert {s.step: s.score for s in StoreReader(tmp_path / "replay").scores() if s.member == 0} == lineage_scores
