"""Running a population of one task module: ``run_experiment`` (what a user calls) and ``open_experiment`` (the
run directory and task spec it builds, for a caller that drives the ``Controller`` itself), with the checks that keep a
run's label and what it does in agreement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from pbt.algorithm import Schedule
from pbt.controller import BASELINE_METHODS, REPLAY_METHODS, Controller, Listener
from pbt.domain import load as load_domain
from pbt.executor import TaskSpec
from pbt.rundir import RunDir
from pbt.space import ConfigError, HParams
from pbt.store import StoreReader
from pbt.store_writer import Store


def open_experiment(
    module: str,
    config: Any,
    out: Path | str,
    method: str = "pbt",
    domain: str | None = None,
    initial_hparams: list[HParams] | None = None,
    force: bool = False,
    resume: bool = False,
    schedule: Schedule | None = None,
    replay_of: dict[str, Any] | None = None,
) -> tuple[RunDir, TaskSpec]:
    """Create (or, with ``resume``, reopen) the run directory of ``module``'s task with ``config``.

    ``module`` is a task module (a dotted import path or a ``file.py`` path) that declares a ``pbt.domain.Domain``
    (or just ``make_task(config)``). A baseline method must come with a config that cannot exploit or explore
    (``baselines.baseline_config`` makes one): a run's label and what it does always agree. So must a run that
    follows a ``schedule`` (a ``replay`` or ``final`` run, ``baselines.replay_config``), which is recorded in the
    store (with ``replay_of``: the run and member it came from) so a resume follows it too. A PBT run given no
    ``initial_hparams`` starts from the domain's own (``Domain.initial_hparams``), if it has them. A
    ``config.pbt.mode`` of ``auto`` becomes the domain's (``Domain.mode``) before anything is recorded or compared.
    """
    searches = config.pbt.exploit != "none" or config.pbt.explore != "none" or config.pbt.explore_every_ready
    if (method in BASELINE_METHODS + REPLAY_METHODS or schedule is not None) and searches:
        raise ConfigError(
            f"a {method} run cannot exploit or explore (exploit={config.pbt.exploit!r}, explore="
            f"{config.pbt.explore!r}); build its config with baselines.baseline_config or "
            "baselines.replay_config"
        )
    if method in REPLAY_METHODS and schedule is None and not resume:
        raise ConfigError(f"a {method} run needs the schedule it follows")
    if config.pbt.strategy == "pb2" and config.pbt.explore != "none":
        from pbt import pb2

        pb2.require()  # before the run directory is made: one line, not a failure at the first ready decision
    task_domain = load_domain(module)
    task_domain.mutation_space(config)  # a mutation that does not fit the space is refused before a directory is made
    config = task_domain.resolve_mode(config)  # once, here: the store records max or min, which every reader follows
    spec = TaskSpec(module, config)  # a task file by its absolute path, which the run records: resume finds it anywhere
    if initial_hparams is None and method == "pbt":
        initial_hparams = task_domain.initial(config)
    run_dir = RunDir.open(
        Path(out),
        domain or module,
        method,
        config,
        initial_hparams,
        task_domain.search_space(config),
        force=force,
        resume=resume,
        metric=task_domain.metric,
        module=spec.module,
        schedule=None if schedule is None else schedule.to_meta(),
        extra_meta=None if replay_of is None else {"replay_of": replay_of},
    )
    return run_dir, spec


def run_experiment(
    module: str,
    config: Any,
    out: Path | str,
    *,
    listeners: Sequence[Listener] = (),
    watch: Callable[[Store], AbstractContextManager[Sequence[Listener]]] | None = None,
    **options: Any,
) -> StoreReader:
    """Run (or continue, with ``resume=True``) a population of ``module``'s task with ``config``; return its store,
    open for reading. ``watch(store)``, if given, is entered once the store is open and held while the run trains;
    the listeners it gives join ``listeners`` (a progress display or a logger, which read the store, is made this
    way). ``options`` are ``open_experiment``'s: ``method``, ``domain``, ``initial_hparams``, ``force``,
    ``resume``, ``schedule``, ``replay_of``."""
    run_dir, spec = open_experiment(module, config, out, **options)
    with run_dir, nullcontext(()) if watch is None else watch(run_dir.store) as watching:
        Controller(run_dir.store, spec, [*listeners, *watching]).run()
    return StoreReader(run_dir.path)  # the run is over and the directory free; what it wrote stays readable
