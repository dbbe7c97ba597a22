"""``pbt-repro resume DIR``: continue a run that stopped, where and as wide as the flags say, computing what it
computed before."""

from __future__ import annotations

import argparse
from pathlib import Path

from pbt.config import replace_fields
from pbt.experiment import open_experiment
from pbt.store import StoreReader
from repro.commands.run import train
from repro.domains import stored_config, stored_domain
from repro.flags import PROG, add_listener_flags, add_task_flag

HELP = "continue a stopped run: resume DIR"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} resume",
        description="Continue a run that stopped (killed, "
        "crashed, interrupted or stopped by its time limit) from the last committed state of each member.",
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--workers", type=int, help="worker processes or Ray slots (default: as the run was started)")
    parser.add_argument("--executor", choices=("local", "serial", "ray"), help="default: as the run was started")
    parser.add_argument("--ray-address", help="Ray cluster to continue on (--executor ray)")
    parser.add_argument(
        "--max-failures",
        type=int,
        help="failures a member may have before it stops the run (default: "
        "as the run was started); a larger value retries a member that stopped it",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        help="seconds of wall time the run may take in all, its earlier sittings included (default: as the run "
        "was started; 0: no limit); a larger value continues a run its time limit stopped",
    )
    add_task_flag(parser)
    add_listener_flags(parser)
    args = parser.parse_args(argv)
    with StoreReader(args.run_dir) as reader:
        meta = reader.meta()
    domain = stored_domain(meta, args.task)
    # where, how wide and how long it runs may change on resume; what it computes may not
    execution = {
        k: v
        for k in ("workers", "executor", "ray_address", "max_failures", "time_limit")
        if (v := getattr(args, k)) is not None
    }
    config = replace_fields(stored_config(domain, meta), execution)
    # through the same door as run --resume: it takes the run's lock (one owner at a time) and checks the config
    run_dir, spec = open_experiment(domain.module, config, args.run_dir, meta["method"], meta["domain"], resume=True)
    return train(args, run_dir, spec, domain.metric, f"{meta['domain']} {meta['method']}")
