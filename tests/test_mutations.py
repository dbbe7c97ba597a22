"""The mutation space apart from the priors (Ray Tune's ``hyperparam_mutations``) and a domain's ``explore_fn``
(its ``custom_explore_fn``): members start from the priors, explore moves them within the mutation space, the
explore function runs after it with the decision's generator, and a resumed run finds it again."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from pbt.algorithm import explore_member
from pbt.config import PBTConfig
from pbt.domain import load
from pbt.experiment import run_experiment
from pbt.mutations import with_mutations
from pbt.rows import MemberRow
from pbt.space import Categorical, ConfigError, IntUniform, LogUniform, Uniform, explore
from pbt.store import StoreReader
from tests.conftest import cli
from tests.momentum_task import MOMENTA
from tests.momentum_task import Config as MomentumConfig
from tests.test_durability import Killed, killer
from tests.test_golden import run_log

REPO = Path(__file__).resolve().parents[1]
TASK = "tests.momentum_task"
SPACE = {"lr": LogUniform(0.01, 0.5), "momentum": Uniform(0.5, 0.99), "opt": Categorical(("adam", "sgd"))}


def momentum_config(**pbt: object) -> MomentumConfig:
    base = MomentumConfig()
    return dataclasses.replace(base, pbt=dataclasses.replace(base.pbt, **pbt))


def significant_digits(value: float) -> bool:
    return float(f"{value:.2g}") == value


@pytest.mark.parametrize("mode", ["perturb", "resample"])
def test_explore_sets_only_values_of_the_mutation_list_while_members_start_anywhere(tmp_path: Path, mode: str) -> None:
    store = run_experiment(TASK, momentum_config(explore=mode), tmp_path / "run")
    initial = [h["momentum"] for h in store.meta()["initial_hparams"]]
    assert not any(m in MOMENTA for m in initial) and all(0.5 <= m <= 0.99 for m in initial)  # drawn from the prior
    explored = store.events("explore")
    assert len(explored) >= 4
    for e in explored:
        old, new = e.old_hparams["momentum"], e.new_hparams["momentum"]
        assert new in MOMENTA, e
        if old not in MOMENTA:  # a uniform start joins the list by a draw from it, as in Ray Tune
            assert e.ops["momentum"] == "resample"
        elif mode == "perturb":  # perturb moves to a neighbouring choice: one index at most
            assert abs(MOMENTA.index(new) - MOMENTA.index(old)) <= 1 and e.ops["momentum"].startswith("* ")
    assert any(e.old_hparams["momentum"] in MOMENTA for e in explored)  # some were explored twice
    # the task's explore function ran after each explore step
    assert all(significant_digits(e.new_hparams["lr"]) for e in explored)
    assert any(e.ops["lr"].endswith(" then explore_fn") for e in explored)
    for m in store.members():  # a member never explored keeps its start; every other one is on the list
        assert m.hparams["momentum"] in MOMENTA or m.hparams["momentum"] in initial
    store.close()


def test_perturb_on_a_list_moves_one_index_and_a_value_off_the_list_is_redrawn_from_it() -> None:
    mutations = {"momentum": Categorical(MOMENTA)}
    for seed in range(40):
        rng = random.Random(seed)
        start = rng.choice(MOMENTA)
        new, ops = explore({"momentum": start}, mutations, rng, "perturb")
        assert abs(MOMENTA.index(new["momentum"]) - MOMENTA.index(start)) == 1 and ops["momentum"] != "resample"
        off, ops = explore({"momentum": 0.8734}, mutations, rng, "perturb")
        assert off["momentum"] in MOMENTA and ops == {"momentum": "resample"}
    # the same rule for a range: a value beyond the mutation's bounds is redrawn within them, not perturbed from
    new, ops = explore({"lr": 0.3}, {"lr": LogUniform(0.01, 0.1)}, random.Random(0), "perturb")
    assert 0.01 <= new["lr"] <= 0.1 and ops == {"lr": "resample"}


def test_mutations_come_from_the_task_and_the_command_line_notation() -> None:
    mutations = with_mutations(SPACE, {"momentum": [0.8, 0.9]}, ("lr=loguniform:0.02:0.2", "opt=choice:sgd,rmsprop"))
    assert mutations == {
        "lr": LogUniform(0.02, 0.2),
        "momentum": Categorical((0.8, 0.9)),
        "opt": Categorical(("sgd", "rmsprop")),
    }
    assert with_mutations(SPACE, {}, ("momentum=choice:0.8,0.9,0.99",))["momentum"] == Categorical(MOMENTA)
    assert with_mutations(SPACE, {}, ()) == SPACE  # by default explore moves within the priors
    domain = load(TASK)
    assert domain.search_space(MomentumConfig())["momentum"] == Uniform(0.5, 0.99)
    assert domain.mutation_space(MomentumConfig())["momentum"] == Categorical(MOMENTA)
    overridden = momentum_config(mutations=("momentum=choice:0.9,0.99",))
    assert domain.mutation_space(overridden)["momentum"] == Categorical((0.9, 0.99))  # the command line wins


@pytest.mark.parametrize(
    "declared, overrides, message",
    [
        (
            {},
            ("beta=choice:1,2",),
            "mutations: 'beta' is not a hyperparameter of this task (it has: lr, momentum, opt)",
        ),
        ({"beta": [1, 2]}, (), "mutations: 'beta' is not a hyperparameter of this task"),
        ({}, ("momentum=choice:high,low",), "mutations: momentum is a number (its prior: uniform:0.5:0.99), so its"),
        ({}, ("opt=uniform:0:1",), "mutations: opt is one of adam, sgd, so its choices must be names like these"),
        ({"momentum": "0.9"}, (), "mutations: momentum must be a prior (LogUniform, Uniform, IntUniform, Categorical)"),
        ({"momentum": []}, (), "mutations: momentum needs at least one choice"),
    ],
)
def test_a_mutation_that_does_not_fit_the_space_is_refused_in_one_line(declared, overrides, message) -> None:
    with pytest.raises(ConfigError) as refused:
        with_mutations(SPACE, declared, overrides)
    assert str(refused.value).startswith(message) and len(str(refused.value).splitlines()) == 1
    with pytest.raises(ConfigError, match=r"^mutations: momentum is a whole number"):
        with_mutations({"momentum": IntUniform(1, 3)}, {"momentum": [1, 2.5]}, ())


@pytest.mark.parametrize(
    "text, message",
    [
        ("momentum=gauss:0:1", "mutations: unknown kind 'gauss' in 'momentum=gauss:0:1'"),
        ("momentum", "mutations: 'momentum' is not NAME=KIND:ARGS"),
        ("lr=loguniform:1:0.1", "mutations: lr: LogUniform: lower bound 1.0 is greater than upper bound 0.1"),
    ],
)
def test_mutations_text_is_checked_with_the_config(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        PBTConfig(mutations=(text,))
    assert str(refused.value).startswith(message)


def test_a_bad_mutation_on_the_command_line_is_one_line_before_any_directory(tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = cli(["run", TASK, "--mutations", "momentum=choice:a,b", "--out", str(out)], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "mutations: momentum is a number" in proc.stderr and not out.exists()


ME = MemberRow(id=0, seed=0, hparams={"lr": 0.1, "momentum": 0.9, "opt": "adam"})


def test_explore_fn_runs_after_explore_with_the_decisions_generator() -> None:
    seen = []

    def adam_only(hparams, rng):
        seen.append((dict(hparams), rng))
        return {**hparams, "opt": "adam"}

    cfg = PBTConfig(explore="perturb")
    rng = random.Random(3)
    plain, plain_event = explore_member(ME, SPACE, cfg, random.Random(3))
    member, event = explore_member(ME, SPACE, cfg, rng, explore_fn=adam_only)
    assert seen[0][0] == plain.hparams and seen[0][1] is rng  # it is given explore's result and the generator
    assert plain.hparams["opt"] == "sgd" and member.hparams == {**plain.hparams, "opt": "adam"}
    assert event.new_hparams == member.hparams
    assert event.ops == {**plain_event.ops, "opt": f"{plain_event.ops['opt']} then explore_fn"}  # it says what changed


@pytest.mark.parametrize(
    "returned, message",
    [
        (None, "explore_fn must return a dict of hyperparameters, got NoneType"),
        ({"lr": 0.1, "momentum": 0.9}, "explore_fn must return the hyperparameters it was given (lr, momentum, opt)"),
        ({"lr": 0.1, "momentum": 0.9, "opt": "adam", "wd": 0}, "explore_fn must return the hyperparameters it was"),
        ({"lr": 2.0, "momentum": 0.9, "opt": "adam"}, "explore_fn returned lr=2.0, outside its mutation space [0.01,"),
        ({"lr": 0.1, "momentum": 0.9, "opt": "nadam"}, "explore_fn returned opt='nadam', outside its mutation space"),
        ({"lr": 0.1, "momentum": "0.9", "opt": "adam"}, "explore_fn returned momentum='0.9', outside its mutation"),
    ],
)
def test_explore_fn_output_that_is_not_hyperparameters_of_the_space_is_refused_in_one_line(returned, message) -> None:
    with pytest.raises(ConfigError) as refused:
        explore_member(ME, SPACE, PBTConfig(), random.Random(0), explore_fn=lambda hparams, rng: returned)
    assert str(refused.value).startswith(message) and len(str(refused.value).splitlines()) == 1


def test_a_resumed_run_finds_the_explore_fn_again_and_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    config = momentum_config()
    reference = run_log(run_experiment(TASK, config, tmp_path / "whole"))
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        run_experiment(TASK, config, out, listeners=[killer(10)])
    before = len(StoreReader(out).events("explore"))
    # a new process, as a user resumes: it imports the task module the store names, and its DOMAIN's explore_fn
    cli(["resume", str(out), "--task", TASK, "--quiet"], cwd=tmp_path, timeout=180)
    resumed = StoreReader(out)
    explored = resumed.events("explore")
    assert len(explored) > before and all(significant_digits(e.new_hparams["lr"]) for e in explored[before:])
    assert run_log(resumed) == reference  # the explore function's draws included
