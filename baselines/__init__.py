"""Baselines at equal compute: random search and grid search.

Both are the PBT driver with exploit and explore switched off (``exploit="none"``, ``explore="none"``): the same
task, executor, store, population size and budget per member, so compute is counted the same way. A member that
diverges is dropped (``on_failure="drop"``), as an independent random-search trial would be.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from pbt.space import ConfigError, HParams, grid
from pbt.store import Store


def baseline_config(module: ModuleType, config: Any, method: str, grid_points: int = 2) -> tuple[Any, list[HParams] | None]:
    """The config (and, for grid search, the initial population) of ``method`` at the compute of ``config``."""
    pbt = dataclasses.replace(config.pbt, exploit="none", explore="none", explore_every_ready=False,
                              on_failure="drop")
    initial = None
    if method == "grid_search":
        initial = grid(module.make_task(config).space, grid_points)
        pbt = dataclasses.replace(pbt, population=len(initial))
    elif method != "random_search":
        raise ConfigError(f"unknown baseline method {method!r}; choose random_search or grid_search")
    return dataclasses.replace(config, pbt=pbt), initial


def check_equal_compute(pbt_run: Store, baseline_run: Store, allow_unequal: bool = False) -> dict[str, Any]:
    """Compare the planned budgets (members × steps per member) of two runs; refuse unequal ones unless allowed."""
    a, b = pbt_run.compute(), baseline_run.compute()
    if a["planned_steps"] != b["planned_steps"] and not allow_unequal:
        raise ConfigError(f"unequal compute: {pbt_run.run_dir} plans {a['planned_steps']} steps but "
                          f"{baseline_run.run_dir} plans {b['planned_steps']}; pass --allow-unequal to compare anyway")
    return {"pbt": a, "baseline": b, "equal": a["planned_steps"] == b["planned_steps"]}
