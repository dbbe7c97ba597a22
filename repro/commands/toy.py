"""``pbt-repro toy``: the paper's toy example, Figure 2 (``experiments.toy.figure2``, which owns its flags)."""

from __future__ import annotations

from experiments.toy import figure2

HELP = "the paper's toy example (Figure 2): PBT, explore-only, exploit-only, grid"


def main(argv: list[str]) -> int:
    return figure2.main(argv)
