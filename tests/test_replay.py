"""Replay: fresh members follow a finished PBT run's discovered schedule (hyperparameters as a function of the weights'
age), or hold its final hyperparameters (``--final``); exploit and explore stay off, a kill resumes to the same
result, and compare takes replays as extra arms."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest

from experiments.toy.task import SPACE
from experiments.toy.task import Config as ToyConfig
from pbt.algorithm import Schedule, follow_schedule
from pbt.experiment import open_experiment, run_experiment
from pbt.lineage import training_spans
from pbt.results import Results
from pbt.rows import Event, MemberRow, ScoreRow
from pbt.rundir import RunDir
from pbt.space import ConfigError
from pbt.store import StoreReader
from pbt.store_writer import Store
from repro.compare import compare
from repro.replay import replay
from tests.conftest import cli
from tests.test_golden import run_log

TOY = "experiments.toy.task"
A, B, C, D = ({"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}, {"h0": 0.7, "h1": 0.6}, {"h0": 0.9, "h1": 0.95})


def toy(steps: int = 12, **pbt: object) -> ToyConfig:
    base = ToyConfig()
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, budget_steps=steps, **pbt))


def test_the_schedule_rule_takes_the_value_at_the_weights_age() -> None:
    schedule = Schedule(((0, A), (8, C), (10, D)))
    assert [schedule.at(age) for age in (0, 7, 8, 9, 10, 99)] == [A, A, C, C, D, D]
    me = MemberRow(id=0, seed=0, hparams=A, step=12, weight_age=12, score=0.5)
    new, [event] = follow_schedule(me, schedule)  # a change between ready points is taken at the next one
    assert new.hparams == D and (event.kind, event.old_hparams, event.new_hparams, event.weight_age) == (
        "schedule",
        A,
        D,
        12,
    )
    restarted = dataclasses.replace(me, step=16, weight_age=9)  # the weights' age decides, not the slot's step
    assert follow_schedule(restarted, schedule)[0].hparams == C
    assert follow_schedule(new, schedule) == (new, [])  # nothing to change, nothing recorded
    with pytest.raises(ValueError, match="ascending ages starting at 0"):
        Schedule(((4, A),))


def hand_made_run(out: Path) -> None:
    """A finished two-member PBT run of the toy, written by hand: member 1 copies member 0's weights at step 4 and
    explores to C; member 0 copies member 1 at step 8 and explores to D, and ends best. So the best lineage trains
    with A for ages 0-4, C for 4-8 and D for 8-12."""
    run_dir = RunDir.open(out, "toy", "pbt", toy(), [A, B], SPACE, module=TOY)
    store = run_dir.store
    events = [
        Event(1, 4, "exploit", donor=0, donor_step=4, old_hparams=B, new_hparams=A, weight_age=4),
        Event(1, 4, "explore", old_hparams=A, new_hparams=C),
        Event(0, 8, "exploit", donor=1, donor_step=8, old_hparams=A, new_hparams=C, weight_age=8),
        Event(0, 8, "explore", old_hparams=C, new_hparams=D),
    ]
    for e in events:
        store.commit(store.members()[e.member], events=[e])
    for member, score in ((0, 1.0), (1, 0.5)):
        row = dataclasses.replace(store.members()[member], step=12, weight_age=12, score=score, status="done")
        store.commit(row, scores=[ScoreRow(member, 12, score)])
    store.set_meta(status="finished")
    run_dir.close()


def toy_q_after(segments: list[tuple[int, dict]], lr: float = 0.01) -> float:
    """The toy's Q after training from θ = (0.9, 0.9) with each (steps, h): θ_i ← θ_i (1 − 2 lr h_i) per step."""
    theta = [0.9, 0.9]
    for steps, h in segments:
        for _ in range(steps):
            theta = [t - lr * 2.0 * hi * t for t, hi in zip(theta, (h["h0"], h["h1"]))]
    return 1.2 - sum(t * t for t in theta)


def test_replay_applies_the_recorded_hyperparameters_at_each_weight_age(tmp_path: Path) -> None:
    hand_made_run(tmp_path / "pbt")
    replay(tmp_path / "pbt", tmp_path / "replay", population=2)
    results = Results(tmp_path / "replay")
    assert results.meta["method"] == "replay" and results.meta["replay_of"]["member"] == 0
    assert results.meta["replay_of"]["run"] == "../pbt"  # relative to the replay: no machine path in a store
    assert results.meta["schedule"] == [{"age": 0, "hparams": A}, {"age": 4, "hparams": C}, {"age": 8, "hparams": D}]
    assert results.meta["initial_hparams"] == [A, A]
    for member in (0, 1):
        changes = [(e.step, e.weight_age, e.old_hparams, e.new_hparams) for e in results.events if e.member == member]
        assert changes == [(4, 4, A, C), (8, 8, C, D)]  # event by event, at the ages the lineage changed
    assert {e.kind for e in results.events} == {"schedule"}  # no exploit, no explore
    # what was applied, not only recorded: Q after 4 steps of A, 4 of C and 4 of D
    assert [m.score for m in results.members] == [pytest.approx(toy_q_after([(4, A), (4, C), (4, D)]), abs=1e-12)] * 2
    assert [(s.start, s.hparams) for s in results.schedule(0)] == [(0, A), (4, C), (8, D)]  # lineage reads it


def test_final_holds_the_final_hyperparameters_from_the_start(tmp_path: Path) -> None:
    hand_made_run(tmp_path / "pbt")
    replay(tmp_path / "pbt", tmp_path / "final", final=True)
    results = Results(tmp_path / "final")
    assert results.meta["method"] == "final" and results.meta["schedule"] == [{"age": 0, "hparams": D}]
    assert results.events == [] and [m.hparams for m in results.members] == [D]
    assert results.members[0].score == pytest.approx(toy_q_after([(12, D)]), abs=1e-12)


def test_replaying_a_real_toy_run_retraces_its_best_lineage_score_for_score(tmp_path: Path) -> None:
    """The toy is deterministic and its members start alike, so the replay's weights are the best lineage's: the
    same score at every step of the weights' age."""
    source = run_experiment(TOY, toy(steps=60, seed=2), tmp_path / "pbt", domain="toy", initial_hparams=[A, B])
    source.close()
    pbt = Results(tmp_path / "pbt")
    assert any(e.kind == "exploit" for e in pbt.events)
    replay(tmp_path / "pbt", tmp_path / "replay")
    store = StoreReader(tmp_path / "pbt")
    by_member_step = {(s.member, s.step): s.score for s in store.scores()}
    store.close()
    segments = pbt.schedule()
    lineage_scores = {
        age_from + k: by_member_step[(s.member, s.start + k)]
        for s, (age_from, age_to) in zip(segments, training_spans(segments))
        for k in range(1, age_to - age_from + 1)
    }
    replayed = StoreReader(tmp_path / "replay")
    assert {s.step: s.score for s in replayed.scores()} == lineage_scores
    replayed.close()


def test_a_killed_replay_resumes_to_the_same_result(tmp_path: Path) -> None:
    run_experiment(TOY, toy(steps=60, seed=4), tmp_path / "pbt", domain="toy", initial_hparams=[A, B]).close()
    replay(tmp_path / "pbt", tmp_path / "whole", population=2)

    class Killed(BaseException):
        pass

    @dataclasses.dataclass
    class KillAfter:
        commits: int

        def __call__(self, *_: object) -> None:
            self.commits -= 1
            if self.commits == 0:
                raise Killed

    for n in (3, 7):  # killed twice, at different points
        with pytest.raises(Killed):
            replay(
                tmp_path / "pbt",
                tmp_path / "killed",
                population=2,
                resume=True,
                listeners_for=lambda store, config, n=n: contextlib.nullcontext([KillAfter(n)]),
            )
    replay(tmp_path / "pbt", tmp_path / "killed", population=2, resume=True)
    whole, killed = (StoreReader(tmp_path / name) for name in ("whole", "killed"))
    assert killed.meta()["status"] == "finished" and run_log(killed) == run_log(whole)
    assert any(e.kind == "schedule" for e in killed.events())


def test_a_replay_cannot_exploit_or_explore_and_needs_a_finished_pbt_run(tmp_path: Path) -> None:
    for method in ("replay", "final", "random_search"):
        with pytest.raises(ConfigError, match="cannot exploit or explore"):
            open_experiment(TOY, toy(), tmp_path / method, method, "toy")
    with pytest.raises(ConfigError, match="needs the schedule"):
        open_experiment(TOY, toy(exploit="none", explore="none"), tmp_path / "r", "replay", "toy")
    run_experiment(
        TOY,
        dataclasses.replace(toy(), pbt=dataclasses.replace(toy().pbt, exploit="none", explore="none")),
        tmp_path / "rs",
        method="random_search",
        domain="toy",
    ).close()
    with pytest.raises(ConfigError, match="only a PBT run"):
        replay(tmp_path / "rs", tmp_path / "out")
    store = RunDir.open(tmp_path / "unfinished", "toy", "pbt", toy(), [A, B], SPACE, module=TOY)
    store.close()
    with pytest.raises(ConfigError, match="has not finished"):
        replay(tmp_path / "unfinished", tmp_path / "out")


def test_compare_takes_replays_as_extra_arms_at_equal_steps_per_member(tmp_path: Path) -> None:
    hand_made_run(tmp_path / "pbt")
    rs_config = toy(exploit="none", explore="none", on_failure="drop")
    run_experiment(TOY, rs_config, tmp_path / "rs", method="random_search", domain="toy").close()
    replay(tmp_path / "pbt", tmp_path / "replay")  # one member: half the population's compute, same per member
    replay(tmp_path / "pbt", tmp_path / "final", final=True, population=3)
    comparison = compare([tmp_path / d for d in ("pbt", "rs", "replay", "final")], tmp_path / "out", figures=False)
    assert comparison.equal_compute
    assert [r.method for r in comparison.rows[:4]] == ["pbt", "random_search", "replay", "final"]
    # a replay copies nothing, so it has no greediness diagnostics (its one founder would read as "coalesced at 0")
    assert [r.coalescence_steps for r in comparison.rows[1:4]] == [[], [], []]
    assert "PBT's schedule replayed from scratch" in (tmp_path / "out" / "comparison.md").read_text()
    run_experiment(
        TOY, toy(steps=8, exploit="none", explore="none"), tmp_path / "short", method="random_search", domain="toy"
    ).close()
    with pytest.raises(ConfigError, match="unequal"):
        compare([tmp_path / "pbt", tmp_path / "short"], tmp_path / "out2", figures=False)
    store = Store(tmp_path / "pbt")  # edited by hand, as a test may: no owner, no lock
    store.set_meta(method="replay")  # a run labelled a replay whose events show exploits
    store.close()
    with pytest.raises(ConfigError, match="labelled a baseline or a replay"):
        compare([tmp_path / "pbt"], tmp_path / "out3", figures=False)


def test_the_replay_command_and_resume(tmp_path: Path) -> None:
    run_experiment(TOY, toy(steps=24), tmp_path / "pbt", domain="toy", initial_hparams=[A, B]).close()
    made = cli(["replay", str(tmp_path / "pbt"), "--population", "2", "--out", str(tmp_path / "replay"), "--quiet"])
    assert "toy / replay — finished" in made.stdout
    store = Store(tmp_path / "replay")  # edited by hand, as a test may: no owner, no lock
    store.set_meta(status="interrupted")  # resume goes through the stored schedule, without the source run
    store.close()
    (tmp_path / "pbt" / "pbt.sqlite").rename(tmp_path / "gone.sqlite")
    cli(["resume", str(tmp_path / "replay"), "--quiet"])
    results = Results(tmp_path / "replay")
    assert results.state[0] == "finished" and results.meta["schedule"][0]["hparams"] == A
