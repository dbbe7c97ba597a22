"""The mutation space, apart from the priors, and a task's own explore function (Ray Tune's ``hyperparam_mutations``
and ``custom_explore_fn``).

The priors (``Task.space``, with ``--priors``) are what the initial population draws from; the mutation space is what
explore moves within afterwards. By default they are the same. A task declares other mutations as an optional
attribute beside its space, and the command line adds more with ``--mutations`` (the ``--priors`` notation)::

    class MyTask:
        space = {"lr": LogUniform(1e-4, 1e-1), "momentum": Uniform(0.5, 0.99)}  # where members start
        mutations = {"momentum": [0.8, 0.9, 0.99]}                              # where explore takes them

A list (or tuple) is a ``Categorical``, as in Ray Tune. A value outside its mutation space (a momentum of 0.8734
drawn from the prior) is redrawn from it at the member's next explore (``pbt.space.explore``), so every value an
explore sets lies in the mutation space.

A domain's ``explore_fn(hparams, rng) -> hparams`` (``Domain.explore_fn``) runs after the built-in explore step, with
the decision's own random generator, so a serial run stays deterministic; it is code in the task module, which a
resumed run and every worker import again, never something the store holds. What it returns is checked here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from pbt.space import (
    Categorical,
    ConfigError,
    HParams,
    IntUniform,
    Prior,
    Uniform,
    check_fits,
    in_prior,
    parse_prior,
    prior_range,
)

ExploreFn = Callable[[HParams, random.Random], HParams]


def with_mutations(
    space: dict[str, Prior], declared: Mapping[str, object], overrides: tuple[str, ...]
) -> dict[str, Prior]:
    """The run's mutation space: the search space ``space`` (priors already applied), with the task's ``declared``
    mutations, then the ``overrides`` (``NAME=KIND:ARGS``, as ``--priors``) in their place. A mutation of a
    hyperparameter the space lacks, or of another kind than it (text choices for a number, fractions for a whole
    number), is refused in one line."""
    mutations = dict(space)
    named = [(name, _as_prior(name, prior)) for name, prior in declared.items()]
    for name, prior in named + [parse_prior(text, "mutations") for text in overrides]:
        if name not in space:
            raise ConfigError(f"mutations: {name!r} is not a hyperparameter of this task (it has: {', '.join(space)})")
        if isinstance(prior, (Uniform, IntUniform, Categorical)):
            check_fits(name, space[name], prior, "mutations")
        mutations[name] = prior
    return mutations


def _as_prior(name: str, mutation: object) -> Prior:
    """A declared mutation as a prior: a list or tuple is a ``Categorical`` of its values (Ray Tune's notation)."""
    if isinstance(mutation, (list, tuple)):
        if not mutation:
            raise ConfigError(f"mutations: {name} needs at least one choice")
        return Categorical(tuple(mutation))
    if not all(callable(getattr(mutation, method, None)) for method in ("sample", "perturb", "add_noise", "clip")):
        raise ConfigError(
            f"mutations: {name} must be a prior (LogUniform, Uniform, IntUniform, Categorical) or a list of "
            f"choices, got {type(mutation).__name__} {repr(mutation)[:60]}"
        )
    return mutation  # type: ignore[return-value]


def apply_explore_fn(
    explore_fn: ExploreFn, hparams: HParams, ops: dict[str, str], mutations: dict[str, Prior], rng: random.Random
) -> tuple[HParams, dict[str, str]]:
    """The task's ``explore_fn`` on the hyperparameters an explore step made (``hparams``, ``ops``), checked
    (``check_explored``); each value it changed has ``then explore_fn`` added to what ``ops`` says was done to it."""
    explored = check_explored(explore_fn(dict(hparams), rng), hparams, mutations)
    ops = dict(ops)
    for name, value in explored.items():
        if value != hparams[name]:
            ops[name] = f"{ops[name]} then explore_fn" if name in ops else "explore_fn"
    return explored, ops


def check_explored(explored: object, hparams: HParams, mutations: dict[str, Prior]) -> HParams:
    """``explore_fn``'s result, refused in one line unless it is the hyperparameters it was given (``hparams``: the
    same names) with every value within its mutation space (``pbt.space.in_prior``)."""
    if not isinstance(explored, dict):
        raise ConfigError(f"explore_fn must return a dict of hyperparameters, got {type(explored).__name__}")
    if set(explored) != set(hparams):
        raise ConfigError(
            f"explore_fn must return the hyperparameters it was given ({', '.join(hparams)}), got "
            f"{', '.join(map(str, explored)) or 'none'}"
        )
    for name, prior in mutations.items():
        if not in_prior(prior, explored[name]):
            raise ConfigError(
                f"explore_fn returned {name}={explored[name]!r}, outside its mutation space {prior_range(prior)}"
            )
    return {name: explored[name] for name in hparams}  # in the order the member has them
