"""``pbt-repro reproduce DOMAIN``: the command line of ``repro.reproduce`` (PBT, random search at the same compute,
the comparison and a results folder)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pbt.domain import Domain
from pbt.store import StoreReader
from repro.domains import label, load_domain
from repro.flags import (
    PROG,
    add_config_file_flag,
    add_config_flags,
    add_listener_flags,
    add_profile_flag,
    config_from_args,
    domain_usage,
    listener_options,
    parse_args,
)
from repro.listeners import run_listeners, wandb_logger
from repro.reproduce import reproduce
from repro.text import fmt

HELP = "PBT, random search at equal compute, comparison, summary: reproduce DOMAIN --profile ..."


def build_parser(name: str, domain: Domain) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} reproduce {name}",
        description=(
            f"PBT, then random search at the same compute, then the comparison and a results folder, for {name} "
            f"(metric: {domain.metric}). Running the same command again continues where a killed run stopped."
        ),
    )
    add_profile_flag(parser, domain)
    parser.add_argument("--seeds", type=int, default=1, help="seeds per arm, counting up from --seed (default 1)")
    parser.add_argument("--out", type=Path, help="results folder (default runs/DOMAIN-PROFILE/results)")
    parser.add_argument("--runs", type=Path, help="where the run directories go (default runs/DOMAIN-PROFILE)")
    parser.add_argument("--force", action="store_true", help="delete the run directories first and start over")
    add_config_file_flag(parser)
    parser.add_argument(
        "--figure-seed",
        type=int,
        default=None,
        help="the PBT seed the schedule, lineage, member-score and greediness figures show (default: "
        "the median seed by best final score)",
    )
    parser.add_argument(
        "--arms",
        default="pbt,random_search",
        help="arms to run now, comma-separated: pbt, random_search, and the strategy arms pb2 and "
        "fire (PBT with that --strategy at the same member-steps). Both of pbt and random_search "
        "(the default) compare them, with every finished strategy run of these seeds in --runs; "
        "otherwise nothing is compared yet",
    )
    add_listener_flags(parser)
    add_config_flags(parser, domain.default_config())
    return parser


def main(argv: list[str]) -> int:
    if (
        code := domain_usage("reproduce", "[--profile smoke|cpu|paper] [--seeds K] [--out DIR] [flags]", argv)
    ) is not None:
        return code
    name = argv[0]
    domain = load_domain(name)
    args = parse_args(build_parser(name, domain), argv[1:], at_least_one=("seeds",))
    config = config_from_args(domain, args.profile, args, args.config_file)
    runs = args.runs or Path("runs") / f"{label(name)}-{args.profile}"

    def listeners_for(arm: str, seed: int, store: Any) -> Any:
        group = f"{label(name)}-{args.profile}-{arm}-s{seed}"
        return run_listeners(
            store, domain.metric, f"{name} {arm} seed {seed}", group=group, wandb_dir=runs, **listener_options(args)
        )

    out = args.out or runs / "results"
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    try:
        summary = reproduce(
            domain,
            config,
            args.profile,
            args.seeds,
            out,
            runs,
            args.force,
            listeners_for,
            command=" ".join([PROG, "reproduce", *argv]),
            arms=arms,
            figure_seed=args.figure_seed,
        )
    except KeyboardInterrupt:  # every run of a reproduction is opened with resume: the same command continues it
        print(f"\n{PROG}: interrupted; run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    if summary is None:
        print(
            f"trained the {' and '.join(arms)} run(s) in {runs}; run reproduce again with --arms "
            "pbt,random_search to compare"
        )
        return 0
    print((out / "comparison.md").read_text())
    print(
        f"{summary['metric']}: PBT best final {fmt(summary['pbt']['best_final'])}, random search best final "
        f"{fmt(summary['random_search']['best_final'])}\nwrote {out / 'summary.json'}, {out / 'README.md'} and "
        f"the figures in {out}"
    )
    if args.wandb:  # the comparison's figures, beside the first PBT run's members
        store = StoreReader(Path(summary["provenance"]["runs"]["pbt"][0]))
        logger = wandb_logger(
            store, args.wandb_project, args.wandb_entity, f"{label(name)}-{args.profile}-pbt-s{config.pbt.seed}", runs
        )
        store.close()
        logger.log_figures([out / f for files in summary["figures"].values() for f in files if f.endswith(".png")])
        logger.close()
    return 0
