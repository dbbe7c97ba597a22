"""``pbt-repro DOMAIN COMMAND ...``: a domain's own tools (``Domain.tools``: rl play, translation translate, ...)."""

from __future__ import annotations

from repro.domains import load_domain
from repro.flags import PROG


def main(domain: str, argv: list[str]) -> int:
    commands = load_domain(domain).tools
    if not argv or argv[0] not in commands:
        print(f"usage: {PROG} {domain} COMMAND ...\ncommands:")
        for name, (text, _) in commands.items():
            print(f"  {name:<18} {text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return int(commands[argv[0]][1](argv[1:]) or 0)
