"""The executor-against-bare-loop measurement the domain benches share."""

from __future__ import annotations

from collections.abc import Callable


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
    print(f"    bare loop {baseline:.0f} {unit}/s (runs: {bare_1:.0f}, {bare_2:.0f}); executor: train calls "
          f"{train_rate:.0f} {unit}/s, ratio {train_rate / baseline:.3f}; with checkpoint I/O {with_io_rate:.0f} "
          f"{unit}/s, ratio {with_io_rate / baseline:.3f}")
