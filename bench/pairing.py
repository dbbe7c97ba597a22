"""What the domain benches share: the executor-against-bare-loop measurement and the two PBT runs it rests on."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peak_memory import PeakMemory

from pbt.experiment import run_experiment

POPULATION_WORKERS = 2  # the cpu profiles' worker count; shares of wall time divide by it


def executor_against_bare(bare: Callable[[], float], executor: Callable[[], tuple[float, float]], unit: str) -> None:
    """Print the executor's throughput as a ratio to the bare loop's. The bare loop runs before and after the executor
    and its mean is the baseline, so a machine that slows down during the run does not favour either side.

    Args:
        bare: Runs the bare loop and returns its throughput.
        executor: Runs one member under the executor and returns (throughput of its train calls, throughput with
            its checkpoint I/O included).
        unit: What is counted per second ("img", "tgt tokens").
    """
    bare_1 = bare()
    train_rate, with_io_rate = executor()
    bare_2 = bare()
    baseline = (bare_1 + bare_2) / 2
    print(
        f"    bare loop {baseline:.0f} {unit}/s (runs: {bare_1:.0f}, {bare_2:.0f}); executor: train calls "
        f"{train_rate:.0f} {unit}/s, ratio {train_rate / baseline:.3f}; with checkpoint I/O {with_io_rate:.0f} "
        f"{unit}/s, ratio {with_io_rate / baseline:.3f}"
    )


def one_member_rows(module: str, config: Any, steps: int, ready_every: int, out: Path, domain: str) -> list[dict]:
    """Train one member through the PBT driver with one worker process, no exploit or explore. Returns the metrics of
    each interval but the first, which pays for process start, data loading and warm-up."""
    pbt = dataclasses.replace(
        config.pbt,
        population=1,
        budget_steps=steps,
        ready_every=ready_every,
        exploit="none",
        explore="none",
        executor="local",
        workers=1,
    )
    store = run_experiment(module, dataclasses.replace(config, pbt=pbt), out, domain=domain)
    rows = [r.metrics for r in store.scores()][1:]
    store.close()
    return rows


def population_run(
    module: str, config: Any, intervals: int, ready_every: int, out: Path, domain: str
) -> tuple[float, list[dict], PeakMemory]:
    """Population 8 on 2 workers for ``intervals`` ready intervals of ``ready_every`` steps, watched by
    ``PeakMemory``. Returns (wall seconds, the metrics of every score row, the memory peaks)."""
    pbt = dataclasses.replace(
        config.pbt,
        population=8,
        workers=POPULATION_WORKERS,
        executor="local",
        ready_every=ready_every,
        budget_steps=intervals * ready_every,
    )
    with PeakMemory() as memory:
        started = time.perf_counter()
        store = run_experiment(module, dataclasses.replace(config, pbt=pbt), out, domain=domain)
        wall = time.perf_counter() - started
    rows = [r.metrics for r in store.scores()]
    store.close()
    return wall, rows, memory
