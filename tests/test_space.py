import random

import pytest

from pbt.space import (
    Categorical,
    ConfigError,
    IntUniform,
    LogUniform,
    Uniform,
    describe,
    explore,
    grid,
    parse_prior,
    sample,
    with_priors,
)

SPACE = {
    "lr": LogUniform(1e-4, 1e-1),
    "dropout": Uniform(0.0, 0.5),
    "unroll": IntUniform(2, 40),
    "opt": Categorical(("sgd", "adam", "rmsprop")),
}


def in_bounds(name, value):
    prior = SPACE[name]
    if isinstance(prior, Categorical):
        return value in prior.choices
    return prior.low <= value <= prior.high


@pytest.mark.parametrize("mode", ["perturb", "resample", "noise"])
def test_explore_stays_in_bounds_and_integers_stay_integers(mode):
    rng = random.Random(0)
    h = sample(SPACE, rng)
    for _ in range(2000):
        h, ops = explore(h, SPACE, rng, mode=mode, perturb_factors=(0.5, 2.0), noise_std=0.5)
        assert set(ops) == set(SPACE)
        for name, value in h.items():
            assert in_bounds(name, value), (name, value)
        assert isinstance(h["unroll"], int)


def test_perturb_multiplies_by_one_of_the_factors_per_hyperparameter():
    rng = random.Random(1)
    h = {"lr": 0.01, "dropout": 0.25}
    space = {k: SPACE[k] for k in h}
    seen = set()
    for _ in range(200):
        new, ops = explore(h, space, rng, mode="perturb", perturb_factors=(0.8, 1.2))
        for k in h:
            assert new[k] == pytest.approx(h[k] * float(ops[k].split()[1]))
        seen.add((ops["lr"], ops["dropout"]))
    assert len(seen) == 4  # factors are drawn independently per hyperparameter


def test_perturb_clips_to_bounds():
    rng = random.Random(0)
    new, _ = explore({"dropout": 0.5}, {"dropout": Uniform(0.0, 0.5)}, rng, perturb_factors=(2.0,))
    assert new["dropout"] == 0.5
    new, _ = explore({"lr": 1e-4}, {"lr": LogUniform(1e-4, 1e-1)}, rng, perturb_factors=(0.5,))
    assert new["lr"] == 1e-4


def test_small_integer_still_moves_and_rounds():
    prior = IntUniform(1, 100)
    assert prior.perturb(5, 1.2, random.Random(0)) == 6  # 6.0
    assert prior.perturb(4, 1.2, random.Random(0)) == 5  # round(4.8)
    assert prior.perturb(2, 1.2, random.Random(0)) == 3  # round(2.4) == 2 would freeze it
    assert prior.perturb(2, 0.8, random.Random(0)) == 1
    assert prior.perturb(1, 0.8, random.Random(0)) == 1  # clipped at the lower bound


def test_categorical_moves_to_a_neighbour():
    prior = SPACE["opt"]
    assert prior.perturb("adam", 1.2, random.Random(0)) == "rmsprop"
    assert prior.perturb("adam", 0.8, random.Random(0)) == "sgd"
    assert prior.perturb("rmsprop", 1.2, random.Random(0)) == "adam"  # bounces at the end
    assert prior.perturb("sgd", 0.8, random.Random(0)) == "adam"


def test_resample_probability():
    rng = random.Random(0)
    h = {"lr": 0.01}
    never = [
        explore(h, {"lr": SPACE["lr"]}, rng, mode="resample", resample_probability=0.0)[1]["lr"] for _ in range(200)
    ]
    always = [
        explore(h, {"lr": SPACE["lr"]}, rng, mode="resample", resample_probability=1.0)[1]["lr"] for _ in range(200)
    ]
    assert "resample" not in never
    assert set(always) == {"resample"}
    some = [
        explore(h, {"lr": SPACE["lr"]}, rng, mode="resample", resample_probability=0.25)[1]["lr"] for _ in range(2000)
    ]
    assert 0.2 < some.count("resample") / len(some) < 0.3


def test_sampling_is_seeded_and_log_uniform_covers_decades():
    a = [sample(SPACE, random.Random(7)) for _ in range(3)]
    b = [sample(SPACE, random.Random(7)) for _ in range(3)]
    assert a == b
    rng = random.Random(0)
    lrs = [SPACE["lr"].sample(rng) for _ in range(3000)]
    below = sum(lr < 1e-3 for lr in lrs) / len(lrs)
    assert 0.28 < below < 0.39  # one decade of three


def test_explore_none_changes_nothing():
    h = {"lr": 0.01, "dropout": 0.1}
    new, ops = explore(h, {k: SPACE[k] for k in h}, random.Random(0), mode="none")
    assert new == h and ops == {}


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Uniform(1.0, 0.0), "lower bound 1.0 is greater than upper bound 0.0"),
        (lambda: LogUniform(0.0, 1.0), "lower bound must be > 0"),
        (lambda: IntUniform(5, 2), "greater than upper bound"),
        (lambda: IntUniform(1.5, 2), "must be integers"),
        (lambda: Categorical(()), "at least one choice"),
    ],
)
def test_bad_priors_are_rejected(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_grid_is_the_cartesian_product():
    points = grid({"a": Uniform(0.0, 1.0), "b": Categorical(("x", "y", "z"))}, 2)
    assert len(points) == 6
    assert {"a": 0.0, "b": "x"} in points and {"a": 1.0, "b": "z"} in points
    assert grid({"lr": LogUniform(1e-4, 1e-2)}, 3)[1]["lr"] == pytest.approx(1e-3)


def test_priors_can_be_overridden_and_bad_ranges_are_refused():
    from pbt.config import PBTConfig

    assert parse_prior("unroll=int:5:50") == ("unroll", IntUniform(5, 50))
    assert parse_prior("opt=choice:adam,sgd") == ("opt", Categorical(("adam", "sgd")))
    space = with_priors(SPACE, ("lr=loguniform:1e-5:1e-3",))
    assert space["lr"] == LogUniform(1e-5, 1e-3) and space["unroll"] is SPACE["unroll"]
    with pytest.raises(ConfigError, match=r"priors: lr: .*lower bound 0.1 is greater than upper bound 0.01"):
        PBTConfig(priors=("lr=loguniform:1e-1:1e-2",))
    with pytest.raises(ConfigError, match="unknown kind 'gauss'"):
        PBTConfig(priors=("lr=gauss:0:1",))
    with pytest.raises(ConfigError, match="'momentum' is not a hyperparameter of this task"):
        with_priors(SPACE, ("momentum=uniform:0:1",))


@pytest.mark.parametrize("text", ["h0=int:1.5:3", "h0=int:1:2.5", "h0=int:nan:3", "h0=int:1:inf"])
def test_int_prior_with_non_integer_bounds_is_refused(text):
    from pbt.config import PBTConfig
    from pbt.space import parse_prior

    with pytest.raises(ConfigError, match="priors: h0: int bounds must be whole numbers"):
        parse_prior(text)
    with pytest.raises(ConfigError, match="int bounds must be whole numbers"):
        PBTConfig(priors=(text,))
    assert parse_prior("h0=int:1:3.0") == ("h0", IntUniform(1, 3))  # a whole number written as a float is fine


GOOD = {"lr": 1e-3, "dropout": 0.5, "unroll": 2, "opt": "adam"}


@pytest.mark.parametrize(
    "member, message",
    [
        ({**GOOD, "lr": 100}, "member 1: lr=100 is outside its prior [0.0001, 0.1] (loguniform)"),
        ({**GOOD, "lr": -1}, "member 1: lr=-1 is outside its prior [0.0001, 0.1] (loguniform)"),
        ({**GOOD, "lr": 1e308}, "member 1: lr=1e+308 is outside its prior [0.0001, 0.1] (loguniform)"),
        ({**GOOD, "lr": float("nan")}, "member 1: lr=nan is outside its prior [0.0001, 0.1] (loguniform)"),
        ({**GOOD, "lr": "0.01"}, "member 1: lr='0.01' is outside its prior [0.0001, 0.1] (loguniform)"),
        ({**GOOD, "lr": True}, "member 1: lr=True is outside its prior [0.0001, 0.1] (loguniform)"),
        ({**GOOD, "dropout": 0.6}, "member 1: dropout=0.6 is outside its prior [0.0, 0.5] (uniform)"),
        ({**GOOD, "unroll": 41}, "member 1: unroll=41 is outside its prior the whole numbers 2 to 40"),
        ({**GOOD, "unroll": 2.5}, "member 1: unroll=2.5 is outside its prior the whole numbers 2 to 40"),
        ({**GOOD, "opt": "adamw"}, "member 1: opt='adamw' is outside its prior one of sgd, adam, rmsprop"),
        ({**GOOD, "momentum": 0.9}, "member 1: 'momentum' is not a hyperparameter of this task (it has: lr, dropout"),
        ({}, "member 1: lr is missing (its prior: [0.0001, 0.1] (loguniform))"),
        ("lr=0.01", "member 1 must be a dict of hyperparameters (lr, dropout, unroll, opt), got str 'lr=0.01'"),
    ],
)
def test_initial_hyperparameters_outside_the_space_are_refused_in_one_line(member, message):
    from pbt.space import check_initial_hparams

    with pytest.raises(ConfigError) as refused:
        check_initial_hparams([GOOD, member], SPACE)
    assert message in str(refused.value) and len(str(refused.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="initial hyperparameters must be a list of dicts, one per member"):
        check_initial_hparams(GOOD, SPACE)  # type: ignore[arg-type]


def test_initial_hyperparameters_inside_the_space_pass_grid_points_included():
    from pbt.space import check_initial_hparams

    check_initial_hparams([GOOD, {"lr": 0.1, "dropout": 0, "unroll": 40.0, "opt": "rmsprop"}], SPACE)
    check_initial_hparams(grid(SPACE, 5), SPACE)  # end points of a log-spaced grid may miss a bound by rounding
    check_initial_hparams([sample(SPACE, random.Random(i)) for i in range(50)], SPACE)


def test_choice_priors_keep_their_types_and_must_fit_the_hyperparameter():
    space = {"momentum": Uniform(0.0, 0.99), "unroll": IntUniform(5, 50), "optimizer": Categorical(("adam", "sgd"))}
    typed = with_priors(space, ("momentum=choice:0.8,0.9,0.99", "unroll=choice:5,10", "optimizer=choice:sgd,rmsprop"))
    assert typed["momentum"] == Categorical((0.8, 0.9, 0.99))  # numbers, not the strings "0.8", ...
    assert typed["unroll"].choices == (5, 10) and all(type(c) is int for c in typed["unroll"].choices)
    assert typed["optimizer"] == Categorical(("sgd", "rmsprop"))
    with pytest.raises(ConfigError, match=r"^priors: momentum is a number .*choices must be numbers"):
        with_priors(space, ("momentum=choice:high,low",))
    with pytest.raises(ConfigError, match=r"^priors: unroll is a whole number"):
        with_priors(space, ("unroll=choice:5,7.5",))
    with pytest.raises(ConfigError, match=r"^priors: optimizer is one of adam, sgd, so its choices must be names"):
        with_priors(space, ("optimizer=choice:1,2",))
    assert parse_prior(f"m={describe(typed['momentum'])}") == ("m", typed["momentum"])  # stored and read back alike
