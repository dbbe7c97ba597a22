"""Baselines at equal compute: random search and grid search, for any domain (a built-in one or a user's).

Both are the PBT driver with exploit and explore switched off (``exploit="none"``, ``explore="none"``): the same
task, executor, store, population size and budget per member, so compute is counted the same way;
``repro.compare.check_comparable`` refuses to compare runs whose planned compute differs. A member that
diverges is dropped (``on_failure="drop"``), as an independent random-search trial would be. The search space is the
task's, with the run's ``--priors`` applied, for both methods (``Domain.search_space``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pbt.domain import Domain
from pbt.space import ConfigError, HParams, grid


def baseline_config(domain: Domain, config: Any, method: str, grid_points: int = 2) -> tuple[Any, list[HParams] | None]:
    """The config (and, for grid search, the initial population) of ``method`` at the compute of ``config``."""
    pbt = dataclasses.replace(config.pbt, exploit="none", explore="none", explore_every_ready=False,
                              on_failure="drop")
    initial = None
    if method == "grid_search":
        initial = grid(domain.search_space(config), grid_points)
        pbt = dataclasses.replace(pbt, population=len(initial))
    elif method != "random_search":
        raise ConfigError(f"unknown baseline method {method!r}; choose random_search or grid_search")
    return dataclasses.replace(config, pbt=pbt), initial

