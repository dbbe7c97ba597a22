"""``pbt-repro``: the command line. Per-domain flags are generated from the domain's ``Config`` dataclass (and its
nested ``PBTConfig``), so every setting a profile has can be overridden, and nothing is declared twice.

    pbt-repro demo                                   # the quick start: toy reproduction (+ each domain's smoke run)
    pbt-repro toy --out DIR                          # Figure 2: PBT vs explore-only vs exploit-only vs grid
    pbt-repro run DOMAIN --profile cpu [--population N --workers W --seed S --out DIR --exploit ... --explore ...]
    pbt-repro baseline DOMAIN --profile cpu [...]    # random search (or --method grid) at equal compute
    pbt-repro resume DIR                             # continue a killed run where it stopped
    pbt-repro status DIR                             # the members of a run, once
    pbt-repro DOMAIN COMMAND ...                     # a domain's own tools (e.g. rl play, translation translate)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import types
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

from pbt.config import from_dict, replace_fields
from pbt.controller import RunFailed
from pbt.space import ConfigError

PROG = "pbt-repro"


def domains() -> dict[str, str]:
    from experiments import DOMAINS

    return DOMAINS


def load_domain(name: str) -> ModuleType:
    known = domains()
    if name not in known:
        raise ConfigError(f"unknown domain {name!r}; choose one of: {', '.join(known)}")
    return importlib.import_module(known[name])


# -- flags generated from dataclasses ---------------------------------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_field(parser: argparse.ArgumentParser, f: dataclasses.Field, hint: Any, default: Any) -> None:
    text = f.metadata.get("help", "")
    help_text = f"{text} (profile: {default!r})" if text else f"(profile: {default!r})"
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is bool:
        parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
    elif origin is typing.Literal:
        parser.add_argument(_flag(f.name), choices=typing.get_args(hint), metavar="{" + ",".join(
            map(str, typing.get_args(hint))) + "}", **kwargs)
    elif origin is tuple:
        item = typing.get_args(hint)[0]
        parser.add_argument(_flag(f.name), nargs="+", type=item, metavar=item.__name__.upper(), **kwargs)
    elif hint in (int, float, str):
        parser.add_argument(_flag(f.name), type=hint, metavar=hint.__name__.upper(), **kwargs)
    else:
        raise TypeError(f"config field {f.name!r} has a type the CLI cannot build a flag for: {hint!r}")


def add_config_flags(parser: argparse.ArgumentParser, config: Any) -> None:
    """One flag per field of ``config`` and of its nested dataclasses (PBT settings first, then the domain's)."""
    hints = typing.get_type_hints(type(config))
    nested = [f for f in dataclasses.fields(config) if dataclasses.is_dataclass(hints[f.name])]
    own = [f for f in dataclasses.fields(config) if not dataclasses.is_dataclass(hints[f.name])]
    for f in nested:
        group = parser.add_argument_group(f"{f.name} settings")
        sub = getattr(config, f.name)
        sub_hints = typing.get_type_hints(type(sub))
        for g in dataclasses.fields(sub):
            _add_field(group, g, sub_hints[g.name], getattr(sub, g.name))  # type: ignore[arg-type]
    group = parser.add_argument_group(f"{type(config).__module__.rsplit('.', 1)[0]} settings")
    for f in own:
        _add_field(group, f, hints[f.name], getattr(config, f.name))  # type: ignore[arg-type]


def config_from_args(module: ModuleType, profile: str, args: argparse.Namespace, config_file: str | None) -> Any:
    if profile not in module.PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of: {', '.join(module.PROFILES)}")
    config = module.PROFILES[profile]
    if config_file:
        try:
            data = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--config {config_file}: {exc}") from exc
        config = replace_fields(config, data)
    fields = {f.name for f in dataclasses.fields(config)} | {f.name for f in dataclasses.fields(config.pbt)}
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    return replace_fields(config, overrides)


# -- commands ---------------------------------------------------------------------------------------------------


def _run_parser(command: str, domain: str, module: ModuleType) -> argparse.ArgumentParser:
    what = "PBT" if command == "run" else "a baseline (random search, or grid search) at the same compute"
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {command} {domain}",
        description=f"Train a {domain} population with {what}. Metric: {module.METRIC}. "
                    f"Defaults come from --profile; any flag below overrides one setting.",
    )
    parser.add_argument("--profile", default="cpu", help=f"named settings: {', '.join(module.PROFILES)} (default cpu)")
    parser.add_argument("--out", type=Path, help="run directory (default runs/DOMAIN-METHOD-PROFILE-sSEED)")
    parser.add_argument("--force", action="store_true", help="delete --out first if it already holds something")
    parser.add_argument("--resume", action="store_true", help="continue --out if it holds the same run")
    parser.add_argument("--config", dest="config_file", help="JSON file of setting overrides (unknown keys are errors)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    if command == "baseline":
        parser.add_argument("--method", choices=("random", "grid"), default="random",
                            help="random search (default) or grid search over the priors")
        parser.add_argument("--grid-points", type=int, default=2, help="grid values per hyperparameter (grid only)")
    profile = "cpu" if "cpu" in module.PROFILES else next(iter(module.PROFILES))
    add_config_flags(parser, module.PROFILES[profile])
    return parser


def cmd_run(command: str, argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(f"usage: {PROG} {command} DOMAIN [--profile smoke|cpu|paper] [flags]\n"
              f"domains: {', '.join(domains())}; see `{PROG} {command} DOMAIN --help` for its flags")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    domain = argv[0]
    module = load_domain(domain)
    args = _run_parser(command, domain, module).parse_args(argv[1:])
    config = config_from_args(module, args.profile, args, args.config_file)
    from baselines import baseline_config
    from pbt.controller import run_experiment
    from pbt.progress import PrintProgress

    method, initial = "pbt", getattr(module, "initial_hparams", lambda c: None)(config)
    if command == "baseline":
        method = "grid_search" if args.method == "grid" else "random_search"
        config, initial = baseline_config(module, config, method, args.grid_points)
    out = args.out or Path("runs") / f"{domain}-{method}-{args.profile}-s{config.pbt.seed}"
    listeners = [] if args.quiet else [PrintProgress(config.pbt)]
    store = run_experiment(module.__name__, config, out, method=method, domain=domain, initial_hparams=initial,
                           force=args.force, resume=args.resume, listeners=listeners)
    print_summary(store.run_dir)
    return 0


def cmd_resume(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} resume", description="Continue a run that stopped (killed, "
                                     "crashed or interrupted) from the last committed state of each member.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    from pbt.controller import Controller
    from pbt.executor import TaskSpec
    from pbt.progress import PrintProgress
    from pbt.store import Store

    store = Store.open_existing(args.run_dir)
    meta = store.meta()
    module = load_domain(meta["domain"])
    config = from_dict(module.Config, meta["config"])
    Controller(store, TaskSpec(module.__name__, config), [] if args.quiet else [PrintProgress(config.pbt)]).run()
    print_summary(args.run_dir)
    return 0


def print_summary(run_dir: Path) -> None:
    from pbt.progress import member_table
    from pbt.store import Store

    store = Store.open_existing(run_dir)
    print(member_table(store))
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


def cmd_demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} demo", description="The quick start: the toy reproduction "
                                     "(paper Figure 2), then each experiment's smoke run with random search beside it.")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = parser.parse_args(argv)
    code = cmd_toy(["--out", str(args.out / "toy")])
    print(f"\nFigure 2 reproduction: {args.out / 'toy' / 'figure2.png'}\nTable: {args.out / 'toy' / 'summary.md'}")
    return code


def cmd_domain(domain: str, argv: list[str]) -> int:
    module = load_domain(domain)
    commands: dict[str, tuple[str, Any]] = getattr(module, "COMMANDS", {})
    if not argv or argv[0] not in commands:
        print(f"usage: {PROG} {domain} COMMAND ...\ncommands:")
        for name, (text, _) in commands.items():
            print(f"  {name:<18} {text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return int(commands[argv[0]][1](argv[1:]) or 0)


COMMANDS = {
    "demo": "quick start: toy reproduction and each domain's smoke run",
    "toy": "the paper's toy example (Figure 2): PBT, explore-only, exploit-only, grid",
    "run": "train a population with PBT: run DOMAIN --profile smoke|cpu|paper",
    "baseline": "random search (or grid) at the same compute: baseline DOMAIN --profile ...",
    "resume": "continue a stopped run: resume DIR",
    "status": "print a run's members: status DIR",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[0] + "\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:<10} {text}")
        print(f"  {'DOMAIN':<10} a domain's own tools: {', '.join(domains())}")
        return 0
    command, rest = argv[0], argv[1:]
    try:
        if command in ("run", "baseline"):
            return cmd_run(command, rest)
        if command == "resume":
            return cmd_resume(rest)
        if command == "status":
            return cmd_status(rest)
        if command == "toy":
            return cmd_toy(rest)
        if command == "demo":
            return cmd_demo(rest)
        if command in domains():
            return cmd_domain(command, rest)
        print(f"{PROG}: unknown command {command!r}; see `{PROG} --help`", file=sys.stderr)
        return 2
    except (ConfigError, FileNotFoundError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"{PROG}: run stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; continue with `{PROG} resume DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
