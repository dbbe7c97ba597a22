"""``pbt-repro report``: the command line of ``repro.report`` (``results/README.md`` regenerated from the summaries)."""

from __future__ import annotations

import argparse
from pathlib import Path

import repro.report
from repro.flags import PROG
from repro.report import load_summaries, render

HELP = "regenerate results/README.md from results/*/summary.json"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} report", description=repro.report.__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder (default results)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        raise FileNotFoundError(f"{args.results} is not a folder")
    text = render(args.results)
    (args.results / "README.md").write_text(text)
    print(f"wrote {args.results / 'README.md'} from {len(load_summaries(args.results))} summaries")
    return 0
