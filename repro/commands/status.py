"""``pbt-repro status DIR``: a run's members, once; run, resume and replay print the same when they end."""

from __future__ import annotations

import argparse
from pathlib import Path

from pbt.store import StoreReader
from repro.flags import PROG
from repro.progress import member_table

HELP = "print a run's members: status DIR"


def print_summary(run_dir: Path) -> None:
    """Print the members of the run in ``run_dir``, read without writing (``StoreReader`` refuses, in one line, a
    ``pbt.sqlite`` that is empty, not a SQLite database or holds no run)."""
    store = StoreReader(run_dir)
    try:
        print(member_table(store))
    finally:
        store.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} status",
        description="Print a run's members: step, score, "
        "hyperparameters and state. Works while the run is going on elsewhere.",
    )
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    print_summary(args.run_dir)
    return 0
