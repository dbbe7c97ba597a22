"""The Python API a user calls: run PBT, random search or grid search on a task, with progress, W&B and TensorBoard.

    from repro.api import run, random_search

    if __name__ == "__main__":                   # worker processes import this file again: guard the run
        results = run("mytask", Config(), "runs/pbt")          # a module path, a file.py path or the module
        baseline = random_search("mytask", Config(), "runs/rs")
        print(results.best.score, baseline.best.score)

Each returns the run's ``pbt.results.Results`` (best member, its checkpoint, its schedule, the member table). The
library's own entry points, ``pbt.experiment.run_experiment`` and ``baselines.random_search`` / ``grid_search``, stay
plain: no progress, no logging, only listeners; these three are them with progress and the loggers asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import baselines
from pbt.controller import Listener
from pbt.domain import Domain, load
from pbt.experiment import run_experiment
from pbt.results import Results
from pbt.space import ConfigError
from pbt.stopping import describe
from pbt.store import StoreReader
from repro import tensorboard_log
from repro.domains import resume_command
from repro.listeners import run_listeners


def _module_ref(task: str | ModuleType | Domain) -> str:
    """What worker processes import to build the task: a module path, or the file of a script's own module."""
    if isinstance(task, Domain):
        if not task.module:
            raise ConfigError("task: a Domain passed to run() must come from pbt.domain.load (it needs its module)")
        return task.module
    if isinstance(task, ModuleType):
        if task.__name__ == "__main__":  # the calling script itself: workers import it by file
            return str(Path(str(task.__file__)).resolve())
        return task.__name__
    return task


def run(
    task: str | ModuleType | Domain,
    config: Any,
    out: Path | str,
    *,
    method: str = "pbt",
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    wandb: bool = False,
    wandb_project: str = "pbt-repro",
    tensorboard: Path | str | None = None,
    listeners: Sequence[Listener] = (),
    initial_hparams: list[dict[str, Any]] | None = None,
) -> Results:
    """Train ``task``'s population with ``config`` in the run directory ``out`` and return its results.

    Args:
        task: The task module (``"mypkg.mytask"``, ``"path/to/task.py"``, or the module object) declaring a
            ``pbt.domain.Domain`` or just ``make_task(config)``.
        config: The task's config dataclass instance (with its ``pbt: PBTConfig``).
        out: The run directory; it must be new or empty unless ``resume`` or ``force``.
        method: ``"pbt"``; the baselines are ``random_search`` and ``grid_search`` below.
        resume: Continue ``out`` if it holds the same run (a killed run resumes where it stopped).
        force: Replace the run ``out`` holds.
        quiet: No progress display.
        wandb: Log every member to Weights & Biases (offline unless ``WANDB_MODE`` says otherwise).
        tensorboard: Log every member to TensorBoard under this folder (``tensorboard/member-<id>``).
        listeners: More ``(member, scores, events)`` callbacks, called after every commit.
        initial_hparams: A fixed initial population instead of the domain's own (``Domain.initial_hparams``) or
            prior samples.

    Ctrl-C stops the run cleanly and says how to resume it (``SystemExit`` 130, no traceback).
    """
    return _run_with_display(
        partial(run_experiment, method=method),
        method,
        task,
        config,
        out,
        resume=resume,
        force=force,
        quiet=quiet,
        wandb=wandb,
        wandb_project=wandb_project,
        tensorboard=tensorboard,
        listeners=listeners,
        initial_hparams=initial_hparams,
    )


def random_search(task: str | ModuleType | Domain, config: Any, out: Path | str, **options: Any) -> Results:
    """``baselines.random_search`` with progress and W&B: random search at the compute of ``config`` (the same
    population, budget and seed, so the same initial draws as PBT; exploit and explore off). Takes ``run``'s
    options."""
    return _run_with_display(baselines.random_search, "random_search", task, config, out, **options)


def grid_search(
    task: str | ModuleType | Domain, config: Any, out: Path | str, grid_points: int = 2, **options: Any
) -> Results:
    """``baselines.grid_search`` with progress and W&B: grid search over the priors (``config.pbt.priors``
    included), ``grid_points`` values per hyperparameter; the population is the grid's size. Takes ``run``'s
    options."""
    return _run_with_display(
        baselines.grid_search, "grid_search", task, config, out, grid_points=grid_points, **options
    )


def _run_with_display(
    runner: Callable[..., StoreReader],
    method: str,
    task: str | ModuleType | Domain,
    config: Any,
    out: Path | str,
    *,
    quiet: bool = False,
    wandb: bool = False,
    wandb_project: str = "pbt-repro",
    tensorboard: Path | str | None = None,
    **options: Any,
) -> Results:
    """``runner(module, config, out, watch=..., **options)`` (``run_experiment`` or a baseline) with progress and
    W&B and one line on Ctrl-C; the run's results. Errors are the library's: they name the settings to change as a
    caller of this module sets them (``resume=True``, ``out``, ``config.data_path``; ``pbt.errors``), which are the
    arguments of ``run_experiment`` that these take."""
    if tensorboard:  # before the run directory is made
        tensorboard_log.require()
    try:
        ref = _module_ref(task)
        watch = partial(
            run_listeners,
            metric=load(ref).metric,
            title=f"{ref} {method}",
            quiet=quiet,
            wandb=wandb,
            wandb_project=wandb_project,
            tensorboard=tensorboard,
            figures=True,
        )
        runner(ref, config, out, watch=watch, **options).close()
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: continue with {method if method != 'pbt' else 'run'}(..., resume=True) or "
            f"`{resume_command(out, {'domain': ref, 'module': ref})}`",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    results = Results(out)
    if results.meta.get("stop") and not quiet:
        print(f"{ref} {method} stopped: {describe(results.meta['stop'])}")
    return results
