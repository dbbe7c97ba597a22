"""``pbt-repro``: the command line. Per-domain flags are generated from the domain's ``Config`` dataclass (and its
nested ``PBTConfig``), so every setting a profile has can be overridden, and nothing is declared twice.

    pbt-repro demo                                   # the quick start: toy reproduction (+ each domain's smoke run)
    pbt-repro toy --out DIR                          # Figure 2: PBT vs explore-only vs exploit-only vs grid
    pbt-repro run DOMAIN --profile cpu [--population N --workers W --seed S --out DIR --exploit ... --explore ...]
    pbt-repro baseline DOMAIN --profile cpu [...]    # random search (or --method grid) at equal compute
    pbt-repro resume DIR [--task MODULE]             # continue a killed run where it stopped
    pbt-repro status DIR                             # the members of a run, once
    pbt-repro reproduce DOMAIN --profile cpu [--seeds K] [--out DIR]   # PBT + random search + comparison + summary
    pbt-repro compare RUN_DIR [RUN_DIR ...] --out DIR [--allow-unequal]  # tables and figures from run stores
    pbt-repro replay RUN_DIR [--member best] [--population K] [--final] --out DIR   # PBT's schedule from scratch
    pbt-repro study DOMAIN --study population|exploit|transfer|schedule|all --seeds K --out DIR  # §5's analysis
    pbt-repro report [--results results]             # regenerate results/README.md from results/*/summary.json
    pbt-repro DOMAIN COMMAND ...                     # a domain's own tools (e.g. rl play, translation translate)
"""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from pbt.controller import RunFailed
from pbt.space import ConfigError
from pbt.store import DB_NAME, StoreReader
from pbt.store_writer import StoreDamaged
from repro.commands import compare, demo, replay, report, reproduce, resume, run, status, study, tools, toy
from repro.domains import registered
from repro.flags import PROG, worded

COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {  # name: (help, main(argv) -> exit code)
    "demo": (demo.HELP, demo.main),
    "toy": (toy.HELP, toy.main),
    "run": (run.HELP, run.main),
    "baseline": (run.BASELINE_HELP, run.baseline_main),
    "resume": (resume.HELP, resume.main),
    "status": (status.HELP, status.main),
    "reproduce": (reproduce.HELP, reproduce.main),
    "compare": (compare.HELP, compare.main),
    "replay": (replay.HELP, replay.main),
    "study": (study.HELP, study.main),
    "report": (report.HELP, report.main),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[0] + "\n\ncommands:")
        for name, (text, _) in COMMANDS.items():
            print(f"  {name:<10} {text}")
        print(f"  {'DOMAIN':<10} a domain's own tools: {', '.join(registered())}")
        return 0
    command, rest = argv[0], argv[1:]
    if "" not in sys.path and os.getcwd() not in sys.path:  # a task module in this folder imports, as with python -m
        sys.path.insert(0, os.getcwd())
    try:
        if command in COMMANDS:
            return int(COMMANDS[command][1](rest) or 0)
        if command in registered():
            return tools.main(command, rest)
        print(f"{PROG}: unknown command {command!r}; see `{PROG} --help`", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`status DIR | head`): stop quietly, and keep Python from reporting it again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ConfigError, FileNotFoundError) as exc:
        print(f"{PROG}: error: {worded(exc)}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # the run's store, written by this process and read by others, failed under us
        print(f"{PROG}: error: {store_error(exc, command)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a run directory or file that cannot be read or written (permissions, a full disk)
        print(
            f"{PROG}: error: {exc.strerror or exc}"
            + (f": {exc.filename}" if exc.filename else f" ({type(exc).__name__})"),
            file=sys.stderr,
        )
        return 2
    except RunFailed as exc:
        print(f"{PROG}: run stopped: {worded(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside a run's training (those say how to continue themselves)
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130


def store_error(exc: sqlite3.Error, command: str) -> str:
    """One line on a SQLite error: which store (the ``Store`` whose method raised it), what probably happened, and
    what ``command``'s user can do next (never to run the command that just failed, nor one that would fail too)."""
    if isinstance(exc, StoreDamaged):  # already says which file, what happened and what is left
        return str(exc)
    path: Path | None = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        owner = frame.f_locals.get("self")
        if isinstance(owner, StoreReader):
            path = owner.path
    where = str(path) if path is not None else f"the run's store ({DB_NAME})"
    text = str(exc)
    if (
        "readonly" in text
        or "unable to open" in text
        or (
            path is not None
            and path.parent.is_dir()
            and not (os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK)))
        )
    ):
        return f"cannot write {where} ({text}): the run directory or its files are read-only"
    if "disk is full" in text:  # SQLite rolled the transaction back: what was committed is all there
        return (
            f"disk full: {where} could not be written ({text}); nothing committed was lost: free space and "
            f"`{PROG} resume {path.parent if path is not None else 'DIR'}`"
        )
    if "not a database" in text:
        return f"{where} is not a SQLite database ({text}): it was overwritten or is not a run's store"
    damaged = (
        f"{where} was damaged from outside the run ({text}): was its -wal or -shm file deleted, or the file "
        "replaced, while the run used it?"
    )
    if command == "status" or (path is not None and not StoreReader.readable(path.parent)):
        return f"{damaged} It cannot be read as it is, so the run's history is lost: start it again in another --out"
    run_dir = path.parent if path is not None else "DIR"
    return f"{damaged} Its recent history may be lost; `{PROG} status {run_dir}` shows what is left"


if __name__ == "__main__":
    sys.exit(main())
