"""``pbt-repro study DOMAIN --study ...``: the command line of ``repro.study`` (the paper's analysis, §5)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import repro.study
from pbt.domain import Domain
from pbt.rundir import git_commit
from pbt.store_writer import Store
from repro.domains import load_domain
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
from repro.listeners import run_listeners
from repro.study import PAPER_STUDIES, STUDIES, run_study, study_plan

HELP = "the paper's analysis (population, exploit, transfer, schedule): study DOMAIN --study ... --out DIR"


def build_parser(name: str, domain: Domain) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} study {name}", description=repro.study.__doc__.split("\n\n")[0])
    parser.add_argument(
        "--study",
        required=True,
        choices=(*STUDIES, "all"),
        help="what to vary (all: the paper's four, every study but strategy)",
    )
    add_profile_flag(parser, domain)
    parser.add_argument("--seeds", type=int, default=10, help="seeds per variant, counting up from --seed (default 10)")
    parser.add_argument(
        "--values",
        nargs="+",
        help="the variants to run (default: population 2 4 8 16 32; exploit "
        "truncation ttest tournament; transfer both weights hparams; schedule pbt replay final; "
        "strategy pbt tournament pb2 fire random_search)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the study folder: runs/ and one folder per study")
    parser.add_argument("--force", action="store_true", help="replace the study's runs and start over")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the runs the study would train, which are already done, and their cost, then exit",
    )
    add_config_file_flag(parser)
    add_listener_flags(parser)
    add_config_flags(parser, domain.default_config())
    return parser


def main(argv: list[str]) -> int:
    usage = domain_usage("study", f"--study {'|'.join(STUDIES)}|all --seeds K --out DIR [flags]", argv)
    if usage is not None:
        return usage
    name = argv[0]
    domain = load_domain(name)
    parser = build_parser(name, domain)
    args = parse_args(parser, argv[1:], at_least_one=("seeds",))
    if args.study == "all" and args.values:
        parser.error("--values picks one study's variants; give --study too")
    config = config_from_args(domain, args.profile, args, args.config_file)
    seeds = [config.pbt.seed + k for k in range(args.seeds)]
    studies = PAPER_STUDIES if args.study == "all" else (args.study,)
    if args.dry_run:
        print(study_plan(domain, name, config, studies, seeds, args.out, args.values, args.force))
        return 0

    def listeners_for(title: str, store: Store, cfg: Any) -> Any:
        # one TensorBoard subfolder per run (W&B's group is its name already)
        return run_listeners(store, domain.metric, title, group=store.run_dir.name, **listener_options(args))

    trained: set[Path] = set()
    command = " ".join([PROG, "study", *argv])
    commit = git_commit()  # once, before any study rewrites its files: they would mark the tree dirty for the next
    for study in studies:
        table = run_study(
            domain,
            name,
            config,
            args.profile,
            study,
            seeds,
            args.out,
            args.values,
            args.force,
            listeners_for,
            command,
            trained,
            commit,
        )
        print(
            f"\n{study} study ({len(seeds)} seeds), {table['metric']}:\n" + (args.out / study / "table.md").read_text()
        )
    print(f"wrote {', '.join(str(args.out / s) for s in studies)}")
    return 0
