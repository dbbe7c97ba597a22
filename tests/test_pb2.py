"""PB2's explore step (``pbt.pb2``): choices within the priors, a bandit that follows the score changes, a bounded
window of data, a toy run that uses it, and the one line that names the extra when scikit-learn is missing."""

from __future__ import annotations

import dataclasses
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.toy.task import Config as ToyConfig
from pbt import pb2
from pbt.algorithm import after_failure, decision_rng, ready_decision
from pbt.config import PBTConfig
from pbt.experiment import run_experiment
from pbt.interval import IntervalResult
from pbt.rows import EventKind, IntervalRow, MemberRow
from pbt.space import Categorical, ConfigError, IntUniform, LogUniform, Uniform, in_prior, sample
from pbt.store import StoreReader
from repro.cli import main as cli_main
from repro.compare import load_run
from tests.conftest import only_line

pytest.importorskip("sklearn")

SPACE = {
    "lr": LogUniform(1e-5, 1e-1),
    "momentum": Uniform(0.0, 0.9),
    "unroll": IntUniform(5, 50),
    "optimizer": Categorical(("adam", "sgd", "rmsprop")),
}
READY = 10


def pb2_config(**overrides: object) -> PBTConfig:
    return PBTConfig(population=8, ready_every=READY, strategy="pb2", **overrides)  # type: ignore[arg-type]


def history(space: dict, change, population: int = 8, rounds: int = 4, seed: int = 0) -> list[IntervalRow]:
    """``rounds`` ready rounds of ``population`` members with hyperparameters drawn from ``space``, each interval's
    score change ``change(hparams, rng)``."""
    rng = random.Random(seed)
    rows = []
    for r in range(rounds):
        for m in range(population):
            h = sample(space, rng)
            rows.append(
                IntervalRow(
                    member=m,
                    start_step=r * READY,
                    end_step=(r + 1) * READY,
                    hparams=h,
                    start_score=0.0,
                    end_score=change(h, rng),
                )
            )
    return rows


def choose(
    hparams: dict,
    space: dict,
    intervals: list[IntervalRow],
    cfg: PBTConfig,
    pending: tuple = (),
    step: int = 4 * READY,
    seed: int = 0,
) -> tuple[dict, dict]:
    return pb2.choose(
        hparams, space, pb2.History(tuple(intervals), pending), step, cfg, decision_rng(seed, 0, step, "ready")
    )


def test_choices_stay_within_the_priors_integers_are_whole_and_categoricals_keep_pbts_explore() -> None:
    cfg = pb2_config(explore="perturb")
    # the best intervals sit at the edges of every numeric prior, so the bandit is pulled against its bounds
    data = history(SPACE, lambda h, rng: math.log10(h["lr"]) + 5 * h["momentum"] + h["unroll"] / 10 + rng.gauss(0, 1))
    for seed in range(6):
        start = sample(SPACE, random.Random(seed))
        new, ops = choose(start, SPACE, data, cfg, seed=seed)
        for name, prior in SPACE.items():
            assert in_prior(prior, new[name]), (name, new[name])
        assert isinstance(new["unroll"], int)
        assert {ops[k] for k in ("lr", "momentum", "unroll")} == {pb2.OP}
        # the categorical is PBT's perturb: a neighbouring choice, never the GP's
        assert ops["optimizer"] in ("* 0.8", "* 1.2")
        choices = SPACE["optimizer"].choices
        assert abs(choices.index(new["optimizer"]) - choices.index(start["optimizer"])) == 1


def test_a_log_uniform_prior_is_searched_in_log_space_and_an_integer_is_rounded() -> None:
    lr = pb2.Dimension("lr", LogUniform(1e-5, 1e-1))
    assert lr.to_unit(1e-3) == pytest.approx(0.5) and lr.from_unit(0.5) == pytest.approx(1e-3)
    assert lr.from_unit(1.5) == pytest.approx(1e-1) and lr.from_unit(-1.0) == pytest.approx(1e-5)
    unroll = pb2.Dimension("unroll", IntUniform(5, 50))
    assert unroll.from_unit(0.51) == 28 and isinstance(unroll.from_unit(0.51), int)
    assert pb2.Dimension("fixed", Uniform(2.0, 2.0)).from_unit(0.7) == 2.0
    assert [d.name for d in pb2.searched(SPACE)] == ["lr", "momentum", "unroll"]


@pytest.mark.parametrize("direction", [1, -1])
def test_the_bandit_moves_lr_the_way_the_score_change_rises(direction: int) -> None:
    space = {"lr": LogUniform(1e-4, 1e-1)}
    data = history(space, lambda h, rng: direction * math.log10(h["lr"]) + rng.gauss(0, 0.05))
    new, ops = choose({"lr": 1e-3}, space, data, pb2_config())
    assert ops == {"lr": pb2.OP}
    assert (new["lr"] > 1e-2) if direction > 0 else (new["lr"] < 1e-3)


def test_the_window_bounds_the_points_the_gp_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = pb2_config(pb2_window=3)
    space = {"lr": LogUniform(1e-4, 1e-1)}
    data = history(space, lambda h, rng: rng.gauss(0, 1), population=32, rounds=50)
    step = 50 * READY
    later = IntervalRow(
        member=0, start_step=step, end_step=step + READY, hparams={"lr": 1e-2}, start_score=0.0, end_score=5.0
    )  # a member ahead (asynchronous) has finished an interval the decision is before
    seen = []
    fit = pb2.upper_confidence_bound
    monkeypatch.setattr(pb2, "upper_confidence_bound", lambda x, *rest: seen.append(len(x)) or fit(x, *rest))
    with_all = choose({"lr": 1e-3}, space, [*data, later], cfg, step=step)
    recent = [iv for iv in data if iv.start_step >= step - 3 * READY]
    assert seen == [32 * 3] and len(recent) == 32 * 3
    assert choose({"lr": 1e-3}, space, recent, cfg, step=step) == with_all  # older intervals change nothing


def test_the_refinement_stops_at_its_evaluation_budget_with_the_best_point_it_saw() -> None:
    """A rugged acquisition made L-BFGS-B's line search spend 148 evaluations in one decision (maxfun is checked only
    between line searches): the budget bounds that, and past it the best point evaluated is the answer."""
    calls: list[int] = []
    best_single = [-math.inf]

    def rugged(u: np.ndarray) -> np.ndarray:
        calls.append(len(u))
        values = -np.sum((u - 0.3) ** 2, axis=1) + 0.01 * np.sin(5000.0 * u).sum(axis=1)  # unbounded: 100 calls
        if len(u) == 1:
            best_single[0] = max(best_single[0], float(values[0]))
        return values

    u = pb2.maximise(rugged, np.array([0.9, 0.9, 0.9]), 16, random.Random(0))
    refinement = calls[1:-1]  # the candidates' batch first, the refined point's check last
    assert all(n == 1 for n in refinement) and len(refinement) == pb2.REFINE_EVALUATIONS
    assert rugged(u[None, :])[0] == pytest.approx(best_single[0])


def test_values_given_to_other_members_at_the_step_spread_the_next_choice() -> None:
    space = {"lr": LogUniform(1e-4, 1e-1), "momentum": Uniform(0.0, 0.9)}
    data = history(space, lambda h, rng: rng.gauss(0, 1))  # no signal: the bound is all uncertainty
    first, _ = choose({"lr": 1e-3, "momentum": 0.5}, space, data, pb2_config())
    second, _ = choose({"lr": 1e-3, "momentum": 0.5}, space, data, pb2_config(), pending=(first,) * 3)
    assert second != first


def test_without_data_or_numeric_priors_pb2_explores_as_pbt() -> None:
    cfg = pb2_config(explore="perturb")
    new, ops = choose({"lr": 1e-3, "momentum": 0.5, "unroll": 10, "optimizer": "sgd"}, SPACE, [], cfg)
    assert set(ops.values()) <= {"* 0.8", "* 1.2"} and all(in_prior(SPACE[k], v) for k, v in new.items())


def test_a_copy_and_a_failed_members_replacement_both_explore_with_pb2() -> None:
    space = {"lr": LogUniform(1e-4, 1e-1)}
    data = pb2.History(tuple(history(space, lambda h, rng: math.log10(h["lr"]) + rng.gauss(0, 0.05))))
    me = MemberRow(id=0, seed=0, hparams={"lr": 1e-3}, step=4 * READY, score=0.0, checkpoint="a", checksum="a")
    donor = MemberRow(id=1, seed=1, hparams={"lr": 2e-3}, step=4 * READY, score=1.0, checkpoint="b", checksum="b")
    cfg = PBTConfig(population=2, ready_every=READY, strategy="pb2")
    _, events = ready_decision(me, [me, donor], space, cfg, history=data)
    outcome = after_failure(me, IntervalResult(member=0, error="boom"), [me, donor], space, cfg, data)
    for explored in (events[-1], outcome.events[-1]):
        assert explored.kind == EventKind.EXPLORE and explored.ops == {"lr": pb2.OP}
        assert explored.old_hparams == donor.hparams and explored.new_hparams["lr"] > 1e-2


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("pb2_window", 0, "pb2_window must be > 0"),
        ("pb2_candidates", 0, "pb2_candidates must be > 0"),
        ("pb2_kappa", -1.0, "pb2_kappa must be >= 0"),
        ("strategy", "greedy", "strategy must be one of pbt, pb2, fire"),
    ],
)
def test_pb2_settings_are_checked(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PBTConfig(**{field: value})  # type: ignore[arg-type]


def toy_pb2(**pbt: object) -> ToyConfig:
    base = ToyConfig()
    return dataclasses.replace(
        base,
        pbt=dataclasses.replace(
            base.pbt, population=6, seed=3, budget_steps=40, strategy="pb2", explore="perturb", **pbt
        ),
    )


def test_the_store_keeps_each_interval_with_the_score_its_weights_started_from(tmp_path: Path) -> None:
    store = run_experiment("experiments.toy.task", toy_pb2(), tmp_path / "run", domain="toy")
    intervals = store.intervals(0, 40)
    # every interval but each member's first, whose fresh weights had no score to start from
    assert sorted((iv.member, iv.start_step) for iv in intervals) == [(m, s) for m in range(6) for s in range(4, 40, 4)]
    ended = {(iv.member, iv.end_step): iv.end_score for iv in intervals}
    ended |= {(s.member, s.step): s.score for s in store.scores() if s.step == 4}
    copied = {(e.member, e.step): e.donor_score for e in store.events(EventKind.EXPLOIT)}
    assert copied
    for iv in intervals:
        assert iv.start_score == copied.get((iv.member, iv.start_step), ended[(iv.member, iv.start_step)])


def test_a_serial_toy_run_with_pb2_finishes_and_its_explores_carry_pb2s_ops(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    code = cli_main(
        [
            "run",
            "toy",
            "--executor",
            "serial",
            "--workers",
            "1",
            "--population",
            "6",
            "--budget-steps",
            "40",
            "--strategy",
            "pb2",
            "--explore",
            "perturb",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    store = StoreReader(out)
    assert store.meta()["status"] == "finished" and all(m.status == "done" for m in store.members())
    explores = store.events(EventKind.EXPLORE)
    first_ready = 4  # nothing to learn from yet: the fresh members' first intervals have no starting score
    assert explores and all(set(e.ops.values()) == {pb2.OP} for e in explores if e.step > first_ready)
    assert any(e.step > first_ready for e in explores)
    for e in explores:
        assert all(0.0 <= v <= 1.0 for v in e.new_hparams.values())
    store.close()
    assert load_run(out).method == "pb2"  # compare never pools it with PBT's runs


def test_a_missing_scikit_learn_is_one_line_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name in [n for n in sys.modules if n == "sklearn" or n.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'pbt-repro\[pb2\]'"):
        run_experiment("experiments.toy.task", toy_pb2(), tmp_path / "api", domain="toy")
    assert not (tmp_path / "api").exists()
    code = cli_main(
        ["run", "toy", "--executor", "serial", "--strategy", "pb2", "--population", "4", "--out", str(tmp_path / "cli")]
    )
    assert code == 2
    assert "pip install 'pbt-repro[pb2]'" in only_line(capsys.readouterr().err)
    # PBT's own explore needs no scikit-learn
    run_experiment(
        "experiments.toy.task",
        dataclasses.replace(toy_pb2(), pbt=dataclasses.replace(toy_pb2().pbt, strategy="pbt", budget_steps=8)),
        tmp_path / "pbt",
        domain="toy",
    )


def test_only_a_pb2_run_keeps_the_record_of_its_intervals(tmp_path: Path) -> None:
    config = toy_pb2()
    config = dataclasses.replace(config, pbt=dataclasses.replace(config.pbt, strategy="pbt"))
    store = run_experiment("experiments.toy.task", config, tmp_path / "run", domain="toy")
    assert store.events(EventKind.EXPLOIT) and store.intervals(0, 40) == []
