"""``pbt-repro replay RUN_DIR --out DIR``: the command line of ``repro.replay`` (a finished PBT run's schedule, or its
final hyperparameters, followed from scratch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import repro.replay
from pbt.store import StoreReader
from repro.commands.status import print_summary
from repro.flags import PROG, add_listener_flags, add_task_flag, listener_options, parse_args
from repro.listeners import run_listeners
from repro.replay import replay

HELP = "fresh members on a finished PBT run's schedule (or its --final values): replay DIR --out DIR"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} replay", description=repro.replay.__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished PBT run directory")
    parser.add_argument("--member", default="best", help="whose schedule: a member id or best (default)")
    parser.add_argument("--population", type=int, default=1, help="fresh members that follow it (default 1)")
    parser.add_argument(
        "--final",
        action="store_true",
        help="hold the member's final hyperparameters fixed from the "
        "start instead of replaying its schedule (method final)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the replay's run directory")
    parser.add_argument("--resume", action="store_true", help="continue --out if it holds the same replay")
    parser.add_argument("--force", action="store_true", help="replace the run --out holds")
    add_task_flag(parser)
    add_listener_flags(parser)
    args = parse_args(parser, argv, at_least_one=("population",))
    method = "final" if args.final else "replay"

    def listeners_for(store: StoreReader, config: Any) -> Any:
        return run_listeners(
            store,
            str(store.meta().get("metric", "score")),
            f"{args.run_dir} {method}",
            figures=True,
            **listener_options(args),
        )

    replay(
        args.run_dir,
        args.out,
        args.member,
        args.population,
        args.final,
        args.resume,
        args.force,
        listeners_for,
        args.task,
    )
    print_summary(args.out)
    return 0
