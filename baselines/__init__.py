"""Baselines at equal compute: random search and grid search, for any domain (a built-in one or a user's), and the
replay of a PBT run's schedule (or of its final hyperparameters) from scratch.

    from baselines import random_search

    store = random_search("mypkg.mytask", Config(), "runs/rs")   # the same arguments as run_experiment

Both are the PBT driver with exploit and explore switched off (``exploit="none"``, ``explore="none"``): the same
task, executor, store, population size and budget per member, so compute is counted the same way;
``repro.compare.check_comparable`` refuses to compare runs whose planned compute differs. A member that
diverges is dropped (``on_failure="drop"``), as an independent random-search trial would be. The search space is the
task's, with the run's ``--priors`` applied, for both methods (``Domain.search_space``). These are plain: no progress
display, no W&B; ``repro.api`` has the same two with both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pbt.domain import Domain, load
from pbt.experiment import run_experiment
from pbt.space import ConfigError, HParams, grid
from pbt.store_writer import Store


def baseline_config(
    domain: Domain | None, config: Any, method: str, grid_points: int = 2
) -> tuple[Any, list[HParams] | None]:
    """The config (and, for grid search, the initial population) of ``method`` at the compute of ``config`` (only
    grid search needs the ``domain``, for its search space)."""
    pbt = dataclasses.replace(
        config.pbt, strategy="pbt", exploit="none", explore="none", explore_every_ready=False, on_failure="drop"
    )  # no strategy: nothing is copied or explored
    initial = None
    if method == "grid_search":
        if domain is None:
            raise ConfigError("grid search needs the domain, whose search space it spans")
        initial = grid(domain.search_space(config), grid_points)
        pbt = dataclasses.replace(pbt, population=len(initial))
    elif method != "random_search":
        raise ConfigError(f"unknown baseline method {method!r}; choose random_search or grid_search")
    return dataclasses.replace(config, pbt=pbt), initial


def random_search(module: str, config: Any, out: Path | str, **options: Any) -> Store:
    """Random search at the compute of ``config``: the same population, budget and seed (so the same initial draws
    as PBT), exploit and explore off. Takes ``pbt.experiment.run_experiment``'s arguments; returns the run's store."""
    baseline, _ = baseline_config(load(module), config, "random_search")
    return run_experiment(module, baseline, out, method="random_search", **options)


def grid_search(module: str, config: Any, out: Path | str, grid_points: int = 2, **options: Any) -> Store:
    """Grid search over the priors (``config.pbt.priors`` included), ``grid_points`` values per hyperparameter; the
    population is the grid's size. Takes ``pbt.experiment.run_experiment``'s arguments; returns the run's store."""
    baseline, initial = baseline_config(load(module), config, "grid_search", grid_points)
    return run_experiment(module, baseline, out, method="grid_search", initial_hparams=initial, **options)


def replay_config(config: Any, population: int) -> Any:
    """The config of a ``replay`` (or ``final``) run of a PBT run made with ``config``: the same settings (budget per
    member, ready interval, seed, executor), ``population`` fresh members, exploit and explore off (the schedule sets
    the hyperparameters), whatever the strategy that found the schedule. A member that fails is dropped, as in random search, rather than replaced by a copy of
    another member's weights, which would make it something other than a replay."""
    on_failure = "drop" if config.pbt.on_failure == "replace" else config.pbt.on_failure
    pbt = dataclasses.replace(
        config.pbt,
        population=population,
        strategy="pbt",
        exploit="none",
        explore="none",
        explore_every_ready=False,
        on_failure=on_failure,
    )  # a PB2 or FIRE run replays alike
    return dataclasses.replace(config, pbt=pbt)
