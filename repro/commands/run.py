"""``pbt-repro run DOMAIN`` and ``pbt-repro baseline DOMAIN``: train one population, with PBT or with a baseline
(random search, or grid search) at the same compute. One parser serves both; ``train``, which takes an opened run to
its end, serves ``resume`` too."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from baselines import baseline_config
from pbt.controller import Controller
from pbt.domain import Domain
from pbt.experiment import open_experiment
from pbt.rundir import RunDir
from repro.commands.status import print_summary
from repro.domains import label, load_domain, resume_command
from repro.flags import (
    PROG,
    add_config_file_flag,
    add_config_flags,
    add_listener_flags,
    add_profile_flag,
    config_from_args,
    domain_usage,
    listener_options,
)
from repro.listeners import run_listeners
from repro.plan import plan

HELP = "train a population with PBT: run DOMAIN --profile smoke|cpu|paper"
BASELINE_HELP = "random search (or grid) at the same compute: baseline DOMAIN --profile ..."


def build_parser(command: str, name: str, domain: Domain) -> argparse.ArgumentParser:
    what = "PBT" if command == "run" else "a baseline (random search, or grid search) at the same compute"
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {command} {name}",
        description=f"Train a {name} population with {what}. Metric: {domain.metric}. "
        f"Defaults come from --profile; any flag below overrides one setting.",
    )
    add_profile_flag(parser, domain)
    parser.add_argument("--out", type=Path, help="run directory (default runs/DOMAIN-METHOD-PROFILE-sSEED)")
    parser.add_argument("--force", action="store_true", help="delete --out first if it already holds something")
    parser.add_argument("--resume", action="store_true", help="continue --out if it holds the same run")
    add_config_file_flag(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (members, resources, budget, estimated "
        "cost), check it against the visible machine or Ray cluster, and exit",
    )
    add_listener_flags(parser)
    if command == "baseline":
        parser.add_argument(
            "--method",
            choices=("random", "grid"),
            default="random",
            help="random search (default) or grid search over the priors",
        )
        parser.add_argument(
            "--grid-points",
            type=int,
            default=2,
            help="grid values per hyperparameter (grid only); the default 2 tries only the ends of each range, the "
            "corners of the search box",
        )
    add_config_flags(parser, domain.default_config())
    return parser


def main(argv: list[str], command: str = "run") -> int:
    if (code := domain_usage(command, "[--profile smoke|cpu|paper] [flags]", argv)) is not None:
        return code
    name = argv[0]
    domain = load_domain(name)
    args = build_parser(command, name, domain).parse_args(argv[1:])
    config = config_from_args(domain, args.profile, args, args.config_file)
    method, initial = "pbt", None  # a PBT run starts from the domain's initial hyperparameters (open_experiment)
    if command == "baseline":
        method = "grid_search" if args.method == "grid" else "random_search"
        config, initial = baseline_config(domain, config, method, args.grid_points)
    if args.dry_run:
        print(plan(domain, config))
        return 0
    out = args.out or Path("runs") / f"{label(name)}-{method}-{args.profile}-s{config.pbt.seed}"
    run_dir, spec = open_experiment(domain.module, config, out, method, name, initial, args.force, args.resume)
    return train(args, run_dir, spec, domain.metric, f"{name} {method}")


def baseline_main(argv: list[str]) -> int:
    return main(argv, command="baseline")


def train(args: argparse.Namespace, run_dir: RunDir, spec: Any, metric: str, title: str) -> int:
    """Train the opened run to its end with the listeners the flags ask for, close it and print its members. Ctrl-C
    stops it with one line that says how to continue it (exit code 130)."""
    store = run_dir.store
    try:
        with run_listeners(store, metric, title, figures=True, **listener_options(args)) as shown:
            Controller(store, spec, shown).run()
        # read back as `status` does while the run's own connection is still open, so a store damaged from outside
        # (its WAL deleted) is reported in one line; closing first would quietly fold that WAL back in
        print_summary(store.run_dir)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; continue with `{resume_command(store.run_dir, store.meta())}`", file=sys.stderr)
        return 130
    finally:
        run_dir.close()
    return 0
