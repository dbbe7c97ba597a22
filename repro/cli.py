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

import argparse
import os
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Any

from pbt.config import replace_fields
from pbt.controller import RunFailed
from pbt.domain import Domain
from pbt.errors import Worded
from pbt.space import ConfigError
from repro.domains import label, load_domain, registered, resume_command, stored_config, stored_domain
from repro.flags import add_config_flags, config_from_args, flag_name
from repro.listeners import run_listeners, wandb_logger

PROG = "pbt-repro"


def domains() -> dict[str, str]:
    return registered()


# -- commands ---------------------------------------------------------------------------------------------------


def domain_usage(command: str, synopsis: str, argv: list[str]) -> int | None:
    """The usage of a command whose first argument is a DOMAIN, printed when ``argv`` does not start with one: the
    exit code to return then (0 for --help), else None."""
    if argv and not argv[0].startswith("-"):
        return None
    print(f"usage: {PROG} {command} DOMAIN {synopsis}\n"
          f"domains: {', '.join(domains())}; see `{PROG} {command} DOMAIN --help` for its flags")
    return 0 if argv and argv[0] in ("-h", "--help") else 2


def add_profile_flag(parser: argparse.ArgumentParser, domain: Domain) -> None:
    parser.add_argument("--profile", default=domain.default_profile(),
                        help=f"named settings: {', '.join(domain.profiles)} (default {domain.default_profile()})")


def _run_parser(command: str, name: str, domain: Domain) -> argparse.ArgumentParser:
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
    parser.add_argument("--config", dest="config_file", help="JSON file of setting overrides (unknown keys are errors)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (members, resources, budget, estimated "
                        "cost), check it against the visible machine or Ray cluster, and exit")
    add_listener_flags(parser)
    if command == "baseline":
        parser.add_argument("--method", choices=("random", "grid"), default="random",
                            help="random search (default) or grid search over the priors")
        parser.add_argument("--grid-points", type=int, default=2, help="grid values per hyperparameter (grid only)")
    add_config_flags(parser, domain.profiles[domain.default_profile()])
    return parser


def cmd_run(command: str, argv: list[str]) -> int:
    if (code := domain_usage(command, "[--profile smoke|cpu|paper] [flags]", argv)) is not None:
        return code
    name = argv[0]
    domain = load_domain(name)
    args = _run_parser(command, name, domain).parse_args(argv[1:])
    config = config_from_args(domain, args.profile, args, args.config_file)
    from baselines import baseline_config
    from pbt.controller import open_experiment

    method, initial = "pbt", None  # a PBT run starts from the domain's initial hyperparameters (open_experiment)
    if command == "baseline":
        method = "grid_search" if args.method == "grid" else "random_search"
        config, initial = baseline_config(domain, config, method, args.grid_points)
    if args.dry_run:
        from repro.plan import plan

        print(plan(domain, config))
        return 0
    out = args.out or Path("runs") / f"{label(name)}-{method}-{args.profile}-s{config.pbt.seed}"
    run_dir, spec = open_experiment(domain.module, config, out, method, name, initial, args.force, args.resume)
    return train(args, run_dir, spec, domain.metric, f"{name} {method}")


def train(args: argparse.Namespace, run_dir: Any, spec: Any, metric: str, title: str) -> int:
    """Train the opened run (a ``pbt.rundir.RunDir``) to its end with the listeners the flags ask for, close it and
    print its members. Ctrl-C stops it with one line that says how to continue it (exit code 130)."""
    from pbt.controller import Controller

    store = run_dir.store
    try:
        with run_listeners(store, metric, title, figures=True, **listener_options(args)) as shown:
            Controller(store, spec, shown).run()
        # read back as `status` does while the run's own connection is still open, so a store damaged from outside
        # (its WAL deleted) is reported in one line; closing first would quietly fold that WAL back in
        print_summary(store.run_dir)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; continue with `{resume_command(store.run_dir, store.meta())}`",
              file=sys.stderr)
        return 130
    finally:
        run_dir.close()
    return 0


def add_task_flag(parser: argparse.ArgumentParser) -> None:
    """``--task``: the module that continues a stored run of an unregistered task (never imported on the run's say)."""
    parser.add_argument("--task", help="for a run of your own task: its module (mypkg.mytask) or file "
                        "(path/to/task.py); a run directory's recorded module is never imported by itself")


def add_listener_flags(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and the Weights & Biases flags shared by run, baseline, resume and reproduce."""
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--wandb", action="store_true", help="log each member to Weights & Biases (offline when no "
                        "API key is configured), grouped by run")
    parser.add_argument("--wandb-project", default="pbt-repro", help="W&B project (default pbt-repro)")
    parser.add_argument("--wandb-entity", default=None, help="W&B entity (default: your account's)")


def listener_options(args: argparse.Namespace) -> dict[str, Any]:
    """``repro.listeners.run_listeners``'s options, from the flags ``add_listener_flags`` adds."""
    return {"quiet": args.quiet, "wandb": args.wandb, "wandb_project": args.wandb_project,
            "wandb_entity": args.wandb_entity}


def cmd_resume(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} resume", description="Continue a run that stopped (killed, "
                                     "crashed or interrupted) from the last committed state of each member.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--workers", type=int, help="worker processes or Ray slots (default: as the run was started)")
    parser.add_argument("--executor", choices=("local", "serial", "ray"), help="default: as the run was started")
    parser.add_argument("--ray-address", help="Ray cluster to continue on (--executor ray)")
    parser.add_argument("--max-failures", type=int, help="failures a member may have before it stops the run (default: "
                        "as the run was started); a larger value retries a member that stopped it")
    add_task_flag(parser)
    add_listener_flags(parser)
    args = parser.parse_args(argv)
    from pbt.controller import open_experiment

    with open_run(args.run_dir) as reader:
        meta = reader.meta()
    domain = stored_domain(meta, args.task)
    # where and how wide it runs may change on resume; what it computes may not
    execution = {k: v for k in ("workers", "executor", "ray_address", "max_failures")
                 if (v := getattr(args, k)) is not None}
    config = replace_fields(stored_config(domain, meta), execution)
    # through the same door as run --resume: it takes the run's lock (one owner at a time) and checks the config
    run_dir, spec = open_experiment(domain.module, config, args.run_dir, meta["method"], meta["domain"], resume=True)
    return train(args, run_dir, spec, domain.metric, f"{meta['domain']} {meta['method']}")


def cmd_reproduce(argv: list[str]) -> int:
    if (code := domain_usage("reproduce", "[--profile smoke|cpu|paper] [--seeds K] [--out DIR] [flags]",
                             argv)) is not None:
        return code
    name = argv[0]
    domain = load_domain(name)
    parser = argparse.ArgumentParser(prog=f"{PROG} reproduce {name}", description=(
        f"PBT, then random search at the same compute, then the comparison and a results folder, for {name} "
        f"(metric: {domain.metric}). Running the same command again continues where a killed run stopped."))
    add_profile_flag(parser, domain)
    parser.add_argument("--seeds", type=int, default=1, help="seeds per arm, counting up from --seed (default 1)")
    parser.add_argument("--out", type=Path, help="results folder (default runs/DOMAIN-PROFILE/results)")
    parser.add_argument("--runs", type=Path, help="where the run directories go (default runs/DOMAIN-PROFILE)")
    parser.add_argument("--force", action="store_true", help="delete the run directories first and start over")
    parser.add_argument("--config", dest="config_file", help="JSON file of setting overrides (unknown keys are errors)")
    parser.add_argument("--figure-seed", type=int, default=None,
                        help="the PBT seed the schedule, lineage, member-score and greediness figures show (default: "
                             "the median seed by best final score)")
    parser.add_argument("--arms", default="pbt,random_search",
                        help="arms to run now, comma-separated: pbt, random_search, and the strategy arms pb2 and "
                             "fire (PBT with that --strategy at the same member-steps). Both of pbt and random_search "
                             "(the default) compare them, with every finished strategy run of these seeds in --runs; "
                             "otherwise nothing is compared yet")
    add_listener_flags(parser)
    add_config_flags(parser, domain.profiles[domain.default_profile()])
    args = parser.parse_args(argv[1:])
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    config = config_from_args(domain, args.profile, args, args.config_file)
    from repro.reproduce import reproduce
    from repro.text import fmt

    runs = args.runs or Path("runs") / f"{label(name)}-{args.profile}"

    def listeners_for(arm: str, seed: int, store: Any) -> Any:
        group = f"{label(name)}-{args.profile}-{arm}-s{seed}"
        return run_listeners(store, domain.metric, f"{name} {arm} seed {seed}", group=group, wandb_dir=runs,
                             **listener_options(args))

    out = args.out or runs / "results"
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    try:
        summary = reproduce(domain, config, args.profile, args.seeds, out, runs, args.force, listeners_for,
                            command=" ".join([PROG, "reproduce", *argv]), arms=arms, figure_seed=args.figure_seed)
    except KeyboardInterrupt:  # every run of a reproduction is opened with resume: the same command continues it
        print(f"\n{PROG}: interrupted; run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    if summary is None:
        print(f"trained the {' and '.join(arms)} run(s) in {runs}; run reproduce again with --arms "
              "pbt,random_search to compare")
        return 0
    print((out / "comparison.md").read_text())
    print(f"{summary['metric']}: PBT best final {fmt(summary['pbt']['best_final'])}, random search best final "
          f"{fmt(summary['random_search']['best_final'])}\nwrote {out / 'summary.json'}, {out / 'README.md'} and "
          f"the figures in {out}")
    if args.wandb:  # the comparison's figures, beside the first PBT run's members
        store = open_run(Path(summary["provenance"]["runs"]["pbt"][0]))
        logger = wandb_logger(store, args.wandb_project, args.wandb_entity,
                              f"{label(name)}-{args.profile}-pbt-s{config.pbt.seed}", runs)
        store.close()
        logger.log_figures([out / f for files in summary["figures"].values() for f in files if f.endswith(".png")])
        logger.close()
    return 0


def cmd_compare(argv: list[str]) -> int:
    from repro.compare import main as compare_main

    return compare_main(argv)


def cmd_replay(argv: list[str]) -> int:
    from repro.replay import main as replay_main

    return replay_main(argv)


def cmd_study(argv: list[str]) -> int:
    from repro.study import main as study_main

    return study_main(argv)


def cmd_report(argv: list[str]) -> int:
    from repro.report import main as report_main

    return report_main(argv)


def open_run(run_dir: Path) -> Any:
    """A run's store, open for reading (``pbt.store.StoreReader``: it refuses, in one line, a ``pbt.sqlite`` that is
    empty, not a SQLite database or holds no run, and writes nothing)."""
    from pbt.store import StoreReader

    return StoreReader(run_dir)


def print_summary(run_dir: Path) -> None:
    from repro.progress import member_table

    store = open_run(run_dir)
    try:
        print(member_table(store))
    finally:
        store.close()


def cmd_status(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} status", description="Print a run's members: step, score, "
                                     "hyperparameters and state. Works while the run is going on elsewhere.")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    print_summary(args.run_dir)
    return 0


def cmd_toy(argv: list[str]) -> int:
    from experiments.toy.figure2 import main as toy_main

    return toy_main(argv)


def data_root(flag: Path | None) -> Path | None:
    """Where local copies of the data sets live: ``--data-dir``, else ``$PBT_DATA_DIR``, else a ``shared/data``
    folder beside the checkout (the project's CI layout); ``None`` means the domains download what they need."""
    if flag is not None:
        return flag
    if os.environ.get("PBT_DATA_DIR"):
        return Path(os.environ["PBT_DATA_DIR"])
    beside = Path(__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.is_dir() else None


def cmd_demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} demo", description="The quick start: the toy reproduction "
                                     "(paper Figure 2), then each experiment's smoke run with random search beside it.")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--data-dir", type=Path, help="folder holding local copies of the data sets (multi30k/, "
                        "cifar10/); default $PBT_DATA_DIR, else shared/data beside the checkout, else download")
    args = parser.parse_args(argv)
    root = data_root(args.data_dir)
    code = cmd_toy(["--out", str(args.out / "figure2")])
    written = [f"Figure 2 reproduction: {args.out / 'figure2' / 'figure2.png'} (table: "
               f"{args.out / 'figure2' / 'summary.md'})"]
    for domain in domains():
        out = args.out / domain
        print(f"\n== {domain}: PBT against random search, smoke profile ==", flush=True)
        local = load_domain(domain).local_data if root else {}
        flags = [x for field, sub in local.items() for x in (flag_name(field), str(root / sub))]  # type: ignore[operator]
        try:
            cmd_reproduce([domain, "--profile", "smoke", "--out", str(out), "--runs", str(out / "runs"), "--quiet",
                           *flags])
            written.append(f"{domain}: {out / 'README.md'} (figures and summary.json beside it)")
        except (ConfigError, FileNotFoundError) as exc:
            print(f"{PROG} demo: {domain} failed: {worded(exc)}", file=sys.stderr)
            written.append(f"{domain}: FAILED ({worded(exc)})")
            code = 1
    print("\n" + "\n".join(written))
    return code


def cmd_domain(domain: str, argv: list[str]) -> int:
    commands = load_domain(domain).tools
    if not argv or argv[0] not in commands:
        print(f"usage: {PROG} {domain} COMMAND ...\ncommands:")
        for name, (text, _) in commands.items():
            print(f"  {name:<18} {text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return int(commands[argv[0]][1](argv[1:]) or 0)


COMMANDS: dict[str, tuple[str, Any]] = {  # name: (help, main(argv) -> exit code)
    "demo": ("quick start: toy reproduction and each domain's smoke run", cmd_demo),
    "toy": ("the paper's toy example (Figure 2): PBT, explore-only, exploit-only, grid", cmd_toy),
    "run": ("train a population with PBT: run DOMAIN --profile smoke|cpu|paper", lambda argv: cmd_run("run", argv)),
    "baseline": ("random search (or grid) at the same compute: baseline DOMAIN --profile ...",
                 lambda argv: cmd_run("baseline", argv)),
    "resume": ("continue a stopped run: resume DIR", cmd_resume),
    "status": ("print a run's members: status DIR", cmd_status),
    "reproduce": ("PBT, random search at equal compute, comparison, summary: reproduce DOMAIN --profile ...",
                  cmd_reproduce),
    "compare": ("tables and figures from run directories: compare RUN_DIR ... --out DIR", cmd_compare),
    "replay": ("fresh members on a finished PBT run's schedule (or its --final values): replay DIR --out DIR",
               cmd_replay),
    "study": ("the paper's analysis (population, exploit, transfer, schedule): study DOMAIN --study ... --out DIR",
              cmd_study),
    "report": ("regenerate results/README.md from results/*/summary.json", cmd_report),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[0] + "\n\ncommands:")
        for name, (text, _) in COMMANDS.items():
            print(f"  {name:<10} {text}")
        print(f"  {'DOMAIN':<10} a domain's own tools: {', '.join(domains())}")
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in COMMANDS:
            return int(COMMANDS[command][1](rest) or 0)
        if command in domains():
            return cmd_domain(command, rest)
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
        print(f"{PROG}: error: {exc.strerror or exc}"
              + (f": {exc.filename}" if exc.filename else f" ({type(exc).__name__})"), file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"{PROG}: run stopped: {worded(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside a run's training (those say how to continue themselves)
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130


def worded(exc: BaseException) -> str:
    """An error in this program's words: a setting the library's message names (``pbt.errors``) is the flag that
    sets it, ``resume`` ``--resume`` and ``pbt.max_failures`` ``--max-failures`` (config fields' flags are flat)."""
    if isinstance(exc, Worded):
        return exc.worded(lambda option: flag_name(option.rsplit(".", 1)[-1]))
    return str(exc)


def store_error(exc: sqlite3.Error, command: str) -> str:
    """One line on a SQLite error: which store (the ``Store`` whose method raised it), what probably happened, and
    what ``command``'s user can do next (never to run the command that just failed, nor one that would fail too)."""
    from pbt.store import DB_NAME, StoreReader
    from pbt.store_writer import StoreDamaged

    if isinstance(exc, StoreDamaged):  # already says which file, what happened and what is left
        return str(exc)
    path: Path | None = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        owner = frame.f_locals.get("self")
        if isinstance(owner, StoreReader):
            path = owner.path
    where = str(path) if path is not None else f"the run's store ({DB_NAME})"
    text = str(exc)
    if "readonly" in text or "unable to open" in text or (path is not None and path.parent.is_dir() and not (
            os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK)))):
        return f"cannot write {where} ({text}): the run directory or its files are read-only"
    if "disk is full" in text:  # SQLite rolled the transaction back: what was committed is all there
        return (f"disk full: {where} could not be written ({text}); nothing committed was lost: free space and "
                f"`{PROG} resume {path.parent if path is not None else 'DIR'}`")
    if "not a database" in text:
        return f"{where} is not a SQLite database ({text}): it was overwritten or is not a run's store"
    damaged = (f"{where} was damaged from outside the run ({text}): was its -wal or -shm file deleted, or the file "
               "replaced, while the run used it?")
    if command == "status" or (path is not None and not StoreReader.readable(path.parent)):
        return f"{damaged} It cannot be read as it is, so the run's history is lost: start it again in another --out"
    run_dir = path.parent if path is not None else "DIR"
    return f"{damaged} Its recent history may be lost; `{PROG} status {run_dir}` shows what is left"


if __name__ == "__main__":
    sys.exit(main())
