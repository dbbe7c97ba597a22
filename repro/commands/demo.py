"""``pbt-repro demo``: the quick start, the toy reproduction (paper Figure 2) and then each domain's smoke run with
random search beside it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pbt.space import ConfigError
from repro.commands import reproduce, toy
from repro.domains import load_domain, registered
from repro.flags import PROG, flag_name, worded
from repro.report import load_summaries, verdict

HELP = "quick start: toy reproduction and each domain's smoke run"
RESULTS = Path(__file__).resolve().parents[2] / "results"  # the committed results of a checkout


def data_root(flag: Path | None) -> Path | None:
    """Where local copies of the data sets live: ``--data-dir``, else ``$PBT_DATA_DIR``, else a ``shared/data``
    folder beside the checkout (the project's CI layout); ``None`` means the domains download what they need."""
    if flag is not None:
        return flag
    if os.environ.get("PBT_DATA_DIR"):
        return Path(os.environ["PBT_DATA_DIR"])
    beside = Path(__file__).resolve().parents[3] / "shared" / "data"
    return beside if beside.is_dir() else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} demo",
        description="The quick start: the toy reproduction "
        "(paper Figure 2), then each experiment's smoke run with random search beside it.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder holding local copies of the data sets (multi30k/, "
        "cifar10/); default $PBT_DATA_DIR, else shared/data beside the checkout, else download",
    )
    args = parser.parse_args(argv)
    root = data_root(args.data_dir)
    code = toy.main(["--out", str(args.out / "figure2")])
    written = [
        f"Figure 2 reproduction: {args.out / 'figure2' / 'figure2.png'} (table: {args.out / 'figure2' / 'summary.md'})"
    ]
    for domain in registered():
        out = args.out / domain
        print(f"\n== {domain}: PBT against random search, smoke profile ==", flush=True)
        local = load_domain(domain).local_data if root else {}
        flags = [x for field, sub in local.items() for x in (flag_name(field), str(root / sub))]  # type: ignore[operator]
        try:
            reproduce.main(
                [domain, "--profile", "smoke", "--out", str(out), "--runs", str(out / "runs"), "--quiet", *flags]
            )
            written.append(f"{domain}: {out / 'README.md'} (figures and summary.json beside it)")
        except (ConfigError, FileNotFoundError) as exc:
            print(f"{PROG} demo: {domain} failed: {worded(exc)}", file=sys.stderr)
            written.append(f"{domain}: FAILED ({worded(exc)})")
            code = 1
    print("\n" + "\n".join(written))
    print("\n" + "\n".join(closing_lines(RESULTS)))
    return code


def closing_lines(results: Path) -> list[str]:
    """What the smoke numbers mean (nothing: they check the wiring), the committed verdicts, and how to get one."""
    lines = [
        "The smoke runs above only check that everything is wired together: a few steps of tiny models, whose "
        "scores say nothing about PBT or random search."
    ]
    summaries = load_summaries(results) if results.is_dir() else []
    if summaries:
        lines += ["The committed results (results/, paired seeds, 95% t-intervals):"]
        lines += [f"  {verdict(folder, summary)}" for folder, summary in summaries]
    lines += [
        f"A real comparison: {PROG} reproduce DOMAIN --profile cpu --seeds 3 (PBT and random search at equal "
        f"compute, three paired seeds; hours per domain on a 2-core machine)."
    ]
    return lines
