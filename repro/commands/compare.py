"""``pbt-repro compare RUN_DIR ... --out DIR``: the command line of ``repro.compare`` (tables and figures from run
stores)."""

from __future__ import annotations

import argparse
from pathlib import Path

import repro.compare
from repro.compare import compare, markdown_table
from repro.flags import PROG

HELP = "tables and figures from run directories: compare RUN_DIR ... --out DIR"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} compare", description=repro.compare.__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories (finished or still running)")
    parser.add_argument("--out", type=Path, required=True, help="where the tables and figures go")
    parser.add_argument("--allow-unequal", action="store_true", help="compare runs that planned different compute")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="the PBT run (by seed) the schedule, lineage, "
        "member-score and greediness figures show (default: the median seed by best final score)",
    )
    args = parser.parse_args(argv)
    comparison = compare(args.run_dirs, args.out, args.allow_unequal, figures=not args.no_figures, seed=args.seed)
    print(markdown_table(comparison))
    files = ["comparison.md", "comparison.csv", *(f for names in comparison.figures.values() for f in names)]
    print(f"wrote {', '.join(files[:-1])} and {files[-1]} in {args.out}")
    if not args.no_figures and "schedule" not in comparison.figures:
        print("no PBT run given: the schedule, lineage, member-score and greediness figures need one")
    return 0
