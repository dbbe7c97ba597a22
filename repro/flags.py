"""The command line's shared parts, each written once: the program's name, the flags several commands take, the usage
of a command whose first argument is a DOMAIN, and errors in the flags' words.

And the command line generated from a config dataclass: one flag per field (of the config and of its nested
dataclasses, ``pbt: PBTConfig`` first), typed from the annotation, with the field's help text and the profile's value;
and a config rebuilt from a profile, a ``--config`` JSON file and the flags given. Nothing is declared twice.

Why not tyro (CleanRL's choice): tried on the toy's and the PBT config, it would replace ``add_config_flags`` and
``_add_field`` (about 40 lines) but none of ``pbt.config``'s strict loading, which ``--config`` files, stored runs and
configs made in Python need anyway; its errors are a boxed panel of several lines with the field's help, not one line;
its flags are prefixed (``--pbt.population``) and its profiles positional subcommands unless configured otherwise; and
it would need glue (profile defaults, one-line errors, our subcommand tree) of about the size it removes, with a new
dependency."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from pbt.config import replace_fields
from pbt.domain import FILE_MODULE_PREFIX, Domain
from pbt.errors import Worded
from pbt.space import ConfigError
from repro import tensorboard_log
from repro.domains import registered

PROG = "pbt-repro"


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def worded(exc: BaseException) -> str:
    """An error in this program's words: a setting the library's message names (``pbt.errors``) is the flag that
    sets it, ``resume`` ``--resume`` and ``pbt.max_failures`` ``--max-failures`` (config fields' flags are flat)."""
    if isinstance(exc, Worded):
        return exc.worded(lambda option: flag_name(option.rsplit(".", 1)[-1]))
    return str(exc)


# -- flags that several commands take --------------------------------------------------------------------------


def domain_usage(command: str, synopsis: str, argv: list[str]) -> int | None:
    """The usage of a command whose first argument is a DOMAIN, printed when ``argv`` does not start with one: the
    exit code to return then (0 for --help), else None."""
    if argv and not argv[0].startswith("-"):
        return None
    print(
        f"usage: {PROG} {command} DOMAIN {synopsis}\n"
        f"domains: {', '.join(registered())}; see `{PROG} {command} DOMAIN --help` for its flags"
    )
    return 0 if argv and argv[0] in ("-h", "--help") else 2


def add_profile_flag(parser: argparse.ArgumentParser, domain: Domain) -> None:
    parser.add_argument(
        "--profile",
        default=domain.default_profile(),
        help=f"named settings: {', '.join(domain.profiles)} (default {domain.default_profile()})",
    )


def add_config_file_flag(parser: argparse.ArgumentParser) -> None:
    """``--config``: a JSON file of settings, read by ``config_from_args``."""
    parser.add_argument("--config", dest="config_file", help="JSON file of setting overrides (unknown keys are errors)")


def add_task_flag(parser: argparse.ArgumentParser) -> None:
    """``--task``: the module that continues a stored run of an unregistered task (never imported on the run's say)."""
    parser.add_argument(
        "--task",
        help="for a run of your own task: its module (mypkg.mytask) or file "
        "(path/to/task.py); a run directory's recorded module is never imported by itself",
    )


class _TensorBoardDir(argparse.Action):
    """``--tensorboard DIR``, refused in one line while the flags are read (before a run directory is made) when
    tensorboard is not installed."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, value: Any, option: Any = None) -> None:
        tensorboard_log.require()
        setattr(namespace, self.dest, value)


def add_listener_flags(parser: argparse.ArgumentParser) -> None:
    """``--quiet``, the Weights & Biases flags and ``--tensorboard``, shared by the commands that train."""
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="log each member to Weights & Biases (offline when no API key is configured), grouped by run",
    )
    parser.add_argument("--wandb-project", default="pbt-repro", help="W&B project (default pbt-repro)")
    parser.add_argument("--wandb-entity", default=None, help="W&B entity (default: your account's)")
    parser.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        action=_TensorBoardDir,
        help="log each member to TensorBoard under DIR (DIR/member-ID; a subfolder per run where a command trains "
        "several); see it with `tensorboard --logdir DIR`",
    )


def listener_options(args: argparse.Namespace) -> dict[str, Any]:
    """``repro.listeners.run_listeners``'s options, from the flags ``add_listener_flags`` adds."""
    return {
        "quiet": args.quiet,
        "wandb": args.wandb,
        "wandb_project": args.wandb_project,
        "wandb_entity": args.wandb_entity,
        "tensorboard": args.tensorboard,
    }


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str], at_least_one: tuple[str, ...] = ()
) -> argparse.Namespace:
    """``parser.parse_args(argv)``, refusing as argparse refuses a count of ``at_least_one`` (``seeds``) below 1."""
    args = parser.parse_args(argv)
    for name in at_least_one:
        if getattr(args, name) < 1:
            parser.error(f"{flag_name(name)} must be >= 1")
    return args


# -- flags generated from a config dataclass -------------------------------------------------------------------


def _add_field(parser: argparse.ArgumentParser, f: dataclasses.Field, hint: Any, default: Any) -> None:
    text = f.metadata.get("help", "")
    help_text = f"{text} (profile: {default!r})" if text else f"(profile: {default!r})"
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is bool:
        parser.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kwargs)
    elif origin is typing.Literal:
        parser.add_argument(
            flag_name(f.name),
            choices=typing.get_args(hint),
            metavar="{" + ",".join(map(str, typing.get_args(hint))) + "}",
            **kwargs,
        )
    elif origin is tuple:
        item = typing.get_args(hint)[0]
        parser.add_argument(flag_name(f.name), nargs="+", type=item, metavar=item.__name__.upper(), **kwargs)
    elif hint in (int, float, str):
        parser.add_argument(flag_name(f.name), type=hint, metavar=hint.__name__.upper(), **kwargs)
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
    module = type(config).__module__
    if module.startswith(FILE_MODULE_PREFIX):  # a task file: by its file's name, not the name it is imported under
        title = f"{module.removeprefix(FILE_MODULE_PREFIX)}.py"
    else:  # an experiment's package (experiments.rl), or a user's package
        title = module.rsplit(".", 1)[0]
    group = parser.add_argument_group(f"{title} settings")
    for f in own:
        _add_field(group, f, hints[f.name], getattr(config, f.name))  # type: ignore[arg-type]


def config_from_args(domain: Domain, profile: str, args: argparse.Namespace, config_file: str | None) -> Any:
    if profile not in domain.profiles:
        raise ConfigError(f"unknown profile {profile!r}; choose one of: {', '.join(domain.profiles)}")
    config = domain.profiles[profile]
    if config_file:
        try:
            data = json.loads(Path(config_file).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--config {config_file}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(
                f"--config {config_file}: must hold a JSON object of settings, got a "
                f"{type(data).__name__}: {json.dumps(data)[:60]}"
            )
        try:
            config = replace_fields(config, data)
        except ConfigError as exc:  # name the file the bad value came from
            raise ConfigError(f"--config {config_file}: {exc}") from exc
    fields = {f.name for f in dataclasses.fields(config)} | {f.name for f in dataclasses.fields(config.pbt)}
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    return replace_fields(config, overrides)
