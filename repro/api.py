"""The Python API a user calls: run PBT, random search or grid search on a task, with progress and W&B.

    from repro.api import run, random_search

    if __name__ == "__main__":                   # worker processes import this file again: guard the run
        results = run("mytask", Config(), "runs/pbt")          # a module path, a file.py path or the module
        baseline = random_search("mytask", Config(), "runs/rs")
        print(results.best.score, baseline.best.score)

Each returns the run's ``pbt.results.Results`` (best member, its checkpoint, its schedule, the member table). The
library's own entry point, ``pbt.controller.run_experiment``, stays plain: no progress, no W&B, only listeners.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from baselines import baseline_config
from pbt.controller import Controller, Listener, open_experiment
from pbt.domain import Domain, load
from pbt.results import Results
from pbt.space import ConfigError
from repro.listeners import run_listeners

# CLI flags in the core's messages, as the Python arguments a caller of this module passes
_ARGUMENTS = {"--resume": "resume=True", "--force": "force=True", "--out": "out", "--max-failures": "max_failures",
              "--data-path": "config.data_path", "--data-dir": "config.data_dir"}


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


def _pythonic(exc: ConfigError) -> ConfigError:
    text = str(exc)
    for flag, argument in _ARGUMENTS.items():
        text = re.sub(rf"{re.escape(flag)}\b", argument, text)
    return ConfigError(text)


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
        listeners: More ``(member, scores, events)`` callbacks, called after every commit.
        initial_hparams: A fixed initial population instead of prior samples.

    Ctrl-C stops the run cleanly and says how to resume it (``SystemExit`` 130, no traceback).
    """
    ref = _module_ref(task)
    domain = load(ref)
    try:
        store, spec = open_experiment(ref, config, out, method, ref, initial_hparams, force, resume)
    except ConfigError as exc:
        raise _pythonic(exc) from None
    try:
        with run_listeners(store, domain.metric, f"{ref} {method}", quiet=quiet, wandb=wandb,
                           wandb_project=wandb_project, figures=True) as shown:
            Controller(store, spec, [*shown, *listeners]).run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with run(..., resume=True) or `pbt-repro resume {out}`", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        store.close()
    return Results(out)


def random_search(task: str | ModuleType | Domain, config: Any, out: Path | str, **options: Any) -> Results:
    """Random search at the compute of ``config``: the same population, budget and seed (so the same initial
    draws as PBT), exploit and explore off. Takes ``run``'s options."""
    domain = load(_module_ref(task))
    baseline, _ = baseline_config(domain, config, "random_search")
    return run(task, baseline, out, method="random_search", **options)


def grid_search(task: str | ModuleType | Domain, config: Any, out: Path | str, grid_points: int = 2,
                **options: Any) -> Results:
    """Grid search over the priors (``--priors`` included), ``grid_points`` values per hyperparameter; the population
    is the grid's size. Takes ``run``'s options."""
    domain = load(_module_ref(task))
    baseline, initial = baseline_config(domain, config, "grid_search", grid_points)
    return run(task, baseline, out, method="grid_search", initial_hparams=initial, **options)
