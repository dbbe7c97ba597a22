"""Replay a finished PBT run's discovered schedule from scratch, or train with its final hyperparameters held fixed.

    pbt-repro replay RUN_DIR [--member best] [--population K] [--final] --out DIR [--resume]

``replay`` trains ``K`` fresh members (default 1) with the run's own config (domain, budget per member, ready
interval, seed, executor), exploit and explore off, and with the chosen member's lineage hyperparameters as a function
of the weights' age (``pbt.results.Results.discovered_schedule``): each member starts with the schedule's values at
age 0, and at every ready point takes its values at the age its weights have reached (``pbt.algorithm.follow_schedule``,
recorded as ``schedule`` events). ``--final`` holds the member's final hyperparameters fixed from the start instead:
the paper's "train from scratch with PBT's final hyperparameters". The run is labelled ``replay`` (or ``final``) and is
an ordinary run directory: ``resume``, ``status`` and ``compare`` (as an extra arm beside the PBT run) work on it.
The schedule is recorded in its store, so a resume follows it without the source run; ``replay_of`` names the source
relative to the replay's directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baselines import replay_config
from pbt.experiment import run_experiment
from pbt.results import Results
from pbt.space import ConfigError
from pbt.store import StoreReader
from repro.domains import stored_config, stored_domain


def replay(
    source: Path | str,
    out: Path | str,
    member: str = "best",
    population: int = 1,
    final: bool = False,
    resume: bool = False,
    force: bool = False,
    listeners_for: Callable[[StoreReader, Any], Any] | None = None,
    task: str | None = None,
) -> StoreReader:
    """Train (or, with ``resume``, continue) a replay of the finished PBT run ``source`` into ``out``.

    Args:
        source: A finished PBT run directory (its store is enough: no checkpoint is read).
        out: The replay's run directory.
        member: Whose schedule: a member id, or ``best`` (the best final score, by the run's mode).
        population: How many fresh members follow it.
        final: Hold the member's final hyperparameters fixed (method ``final``) instead of replaying its schedule.
        resume: Continue ``out`` if it holds the same replay.
        force: Replace the run ``out`` holds.
        listeners_for: ``(store, config) -> context manager yielding listeners`` (progress, W&B).
        task: For a run of an unregistered task, its module or file: the module the store records is never
            imported on the store's say.

    Returns:
        The replay's store, closed.
    """
    results = Results(source)
    if results.meta.get("method") != "pbt":
        raise ConfigError(
            f"{source} is a {results.meta.get('method')} run: only a PBT run has a discovered schedule to replay"
        )
    if results.state[0] != "finished":
        raise ConfigError(f"{source} has not finished ({results.state[0]}): its schedule is not final yet")
    chosen = results.member(member)
    domain = stored_domain(results.meta, task)
    config = replay_config(stored_config(domain, results.meta), population)
    schedule = results.discovered_schedule(chosen.id, final=final)
    method = "final" if final else "replay"
    # the source's path relative to the replay's own directory: it stays true when the two move together, and a
    # store never records where on a machine it was made
    source_run = Path(os.path.relpath(Path(source).resolve(), Path(out).resolve())).as_posix()
    replay_of = {"run": source_run, "member": chosen.id, "score": chosen.score}
    store = run_experiment(
        domain.module,
        config,
        out,
        method=method,
        domain=str(results.meta["domain"]),
        initial_hparams=[schedule.at(0) for _ in range(population)],
        force=force,
        resume=resume,
        schedule=schedule,
        replay_of=replay_of,
        watch=None if listeners_for is None else lambda opened: listeners_for(opened, config),
    )
    store.close()
    return store
