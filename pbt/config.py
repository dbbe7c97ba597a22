"""The PBT settings of a run, and strict loading of any config dataclass from a plain dict.

Each experiment declares one ``Config`` dataclass for its own settings with a ``pbt: PBTConfig`` field, and a dict of
named profiles (``smoke``, ``cpu``, ``paper``). The command line is generated from these dataclasses (``repro/cli.py``);
every field's help text is the ``help`` entry of its metadata.

Every value is checked against its field's declared type when a config is built from a dict (``from_dict``: the
command line, ``--config`` files, stored runs) and when a ``PBTConfig`` is made in Python, so a value that could only
fail later is refused at once with a ``ConfigError`` naming the field:

- ``int``, ``float``, ``str`` and ``bool`` fields take values of that type (an ``int`` is accepted for a ``float``;
  ``True`` is not an ``int``); a ``Literal`` field takes one of its choices; a nested dataclass takes a dict;
- every ``float`` (and every element of a ``tuple[float, ...]``) must be finite: no NaN, no infinity;
- a ``tuple[X, ...]`` field takes a list or tuple of X, and keeps the length of its default when that default is
  non-empty (the toy's ``theta_init = (0.9, 0.9)`` takes exactly two numbers); a field whose length may vary says
  so with ``doc(..., variable_length=True)`` (``perturb_factors``), and one whose default is empty takes any number.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pbt.space import ConfigError, parse_prior

T = TypeVar("T")


def doc(text: str, *, variable_length: bool = False, **kwargs: Any) -> Any:
    """A dataclass field with help text: ``lr: float = doc("Adam learning rate.", default=1e-3)``.

    ``variable_length``: a ``tuple[X, ...]`` field that takes any number of values; without it, a tuple field with a
    non-empty default takes exactly as many values as its default has (see the module docstring)."""
    metadata: dict[str, Any] = {"help": text}
    if variable_length:
        metadata["variable_length"] = True
    return field(metadata=metadata, **kwargs)


# Where, how wide and how long a run executes; they do not change what any interval computes, so a run may resume
# with other values (a larger time limit continues a run the limit stopped).
EXECUTION_FIELDS = (
    "workers",
    "executor",
    "ray_address",
    "cpus_per_member",
    "gpus_per_member",
    "max_failures",
    "interval_timeout",
    "time_limit",
)


@dataclass
class PBTConfig:
    """How the population is trained, selected and varied. Steps are the task's own unit."""

    population: int = doc("Number of members trained together.", default=8)
    budget_steps: int = doc("Training steps per member (the task's unit: frames, gradient steps).", default=1000)
    ready_every: int = doc("A member is ready after this many steps since it was last ready.", default=100)
    eval_every: int = doc("Evaluate every this many steps (0: once per ready interval).", default=0)
    mode: Literal["auto", "max", "min"] = doc(
        "Which way the score is better: max (a reward, an accuracy), min (a loss, a perplexity, an FID), or auto: the "
        "task's own (Domain.mode). Recorded resolved, so every reader of the run follows it.",
        default="auto",
    )
    strategy: Literal["pbt", "pb2", "fire"] = doc(
        "pbt: the paper's exploit and explore rules. pb2: the same exploit, but a time-varying Gaussian-process "
        "bandit picks a copier's numeric hyperparameters within their priors (Parker-Holder et al. 2020; categorical "
        "ones keep the explore rule; pip install 'pbt-repro[pb2]'). fire: FIRE PBT (Dalibard & Jaderberg 2021): "
        "greedy members, parents judged on how fast their weights improve, and evaluators that measure it "
        "(at least 4 members besides the evaluators). explore none turns exploring off under each.",
        default="pbt",
    )
    exploit: Literal["truncation", "ttest", "tournament", "none"] = doc(
        "Exploit rule: truncation, ttest (Welch), tournament (binary), none.", default="truncation"
    )
    explore: Literal["perturb", "resample", "noise", "none"] = doc(
        "Explore rule applied after a copy: perturb, resample, noise (additive, toy), none.", default="perturb"
    )
    explore_every_ready: bool = doc(
        "Ablation: explore at every ready event even without a copy (the toy's explore-only variant).", default=False
    )
    transfer: Literal["both", "weights", "hparams"] = doc(
        "What an exploit copies from the donor: both (its weights and hyperparameters, the paper's PBT), weights (the "
        "copier keeps its own hyperparameters) or hparams (the copier keeps its own weights); the last two are "
        "ablations. A failed member's replacement always copies both.",
        default="both",
    )
    truncation_fraction: float = doc("Bottom fraction that copies from the top fraction.", default=0.2)
    ttest_alpha: float = doc("Significance level of Welch's t-test (assumption: the paper gives none).", default=0.05)
    ttest_window: int = doc("Number of recent score samples the t-test compares.", default=10)
    perturb_factors: tuple[float, ...] = doc(
        "Factors perturb draws from, per hyperparameter.", default=(0.8, 1.2), variable_length=True
    )
    resample_probability: float = doc("Probability that resample redraws a value from its prior.", default=0.25)
    noise_std: float = doc("Standard deviation of the additive noise explore.", default=0.1)
    pb2_window: int = doc(
        "PB2: the GP learns from the intervals that started within this many ready intervals before the decision "
        "(at most population x this points).",
        default=4,
    )
    pb2_kappa: float = doc(
        "PB2: weight of the GP's standard deviation in its upper confidence bound, mean + kappa x std (score changes "
        "standardised).",
        default=2.0,
    )
    pb2_candidates: int = doc(
        "PB2: random points the upper confidence bound is computed at before the best one is refined.", default=256
    )
    fire_evaluators: int = doc(
        "FIRE: the last this many members are evaluators; the others are halved into greedy members and parents "
        "(population 8: 3 greedy, 3 parents, 2 evaluators).",
        default=2,
    )
    fire_max_eval_steps: int = doc(
        "FIRE: an evaluator whose curve has not met its child's after this many steps stops (0: three ready "
        "intervals).",
        default=0,
    )
    fire_p_value: float = doc(
        "FIRE: significance of the binomial test that an evaluator's curve beats its child's.", default=0.01
    )
    priors: tuple[str, ...] = doc(
        "Replace search-space priors: NAME=loguniform:LOW:HIGH, NAME=uniform:LOW:HIGH, NAME=int:LOW:HIGH or "
        "NAME=choice:A,B.",
        default=(),
    )
    mutations: tuple[str, ...] = doc(
        "What explore moves a hyperparameter within, apart from the prior members start from (Ray Tune's "
        "hyperparam_mutations), in the notation of priors: momentum=choice:0.8,0.9,0.99 (perturb moves to a "
        "neighbouring choice). A value outside it is redrawn from it at the next explore.",
        default=(),
    )
    workers: int = doc("Worker processes (0: one per CPU core; 1 with --executor serial runs in-process).", default=0)
    executor: Literal["local", "serial", "ray"] = doc(
        "local: worker processes; serial: in-process, deterministic; ray: a Ray cluster (pip install pbt-repro[ray]).",
        default="local",
    )
    ray_address: str = doc(
        "Ray cluster to join with --executor ray: auto, HOST:PORT, or empty for a local one.", default=""
    )
    cpus_per_member: float = doc("CPUs Ray reserves for each running member.", default=1.0)
    gpus_per_member: float = doc("GPUs Ray reserves for each running member (fractions share a GPU).", default=0.0)
    seed: int = doc("Seed of the run; member i is made with seed + i.", default=0)
    on_failure: Literal["replace", "retry", "drop"] = doc(
        "What happens to a member whose interval fails: replace (copy a good member), retry, drop.", default="replace"
    )
    max_failures: int = doc("A member that fails more than this many times stops the run.", default=3)
    interval_timeout: float = doc(
        "Seconds one interval of a member may take (from when its worker is ready; on Ray, from when it is submitted) "
        "before the worker is stopped and the interval counted as the member's failure; 0: no limit. Needs worker "
        "processes (not --executor serial).",
        default=0.0,
    )
    stop_score: float | None = doc(
        "Stop the run once any member's score reaches this: at or above it, or at or below it under mode min (none: "
        "train to the budget). Intervals already running finish; the run ends finished, recording the stop and the "
        "compute spent.",
        default=None,
    )
    time_limit: float = doc(
        "Stop the run once its wall time, summed over its sittings, reaches this many seconds (0: no limit). "
        "Intervals already running finish; a resume with a larger limit continues the run.",
        default=0.0,
    )

    def __post_init__(self) -> None:
        check_fields(self)  # types, finite floats, choices; then the ranges below
        positive = {
            "budget_steps": self.budget_steps,
            "ready_every": self.ready_every,
            "ttest_window": self.ttest_window,
            "pb2_window": self.pb2_window,
            "pb2_candidates": self.pb2_candidates,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if self.population < 1:
            raise ConfigError(f"population must be >= 1, got {self.population}")
        if self.exploit != "none" and self.population < 2:
            raise ConfigError(f"population must be >= 2 for exploit={self.exploit!r}, got {self.population}")
        if self.cpus_per_member < 0 or self.gpus_per_member < 0:
            raise ConfigError("cpus_per_member and gpus_per_member must be >= 0")
        if self.eval_every < 0 or self.workers < 0 or self.max_failures < 0:
            raise ConfigError("eval_every, workers and max_failures must be >= 0")
        if not 0.0 < self.truncation_fraction <= 0.5:
            raise ConfigError(f"truncation_fraction must be in (0, 0.5], got {self.truncation_fraction}")
        if not 0.0 < self.ttest_alpha < 1.0:
            raise ConfigError(f"ttest_alpha must be in (0, 1), got {self.ttest_alpha}")
        if not 0.0 <= self.resample_probability <= 1.0:
            raise ConfigError(f"resample_probability must be in [0, 1], got {self.resample_probability}")
        if not self.perturb_factors or not all(math.isfinite(f) and f > 0 for f in self.perturb_factors):
            raise ConfigError(f"perturb_factors must be positive numbers, got {self.perturb_factors}")
        if self.noise_std < 0:
            raise ConfigError(f"noise_std must be >= 0, got {self.noise_std}")
        if self.pb2_kappa < 0:
            raise ConfigError(f"pb2_kappa must be >= 0, got {self.pb2_kappa}")
        if self.strategy == "fire":
            if self.fire_evaluators < 1 or self.population - self.fire_evaluators < 4:
                raise ConfigError(
                    f"strategy fire needs fire_evaluators >= 1 and at least 4 other members (2 greedy, 2 "
                    f"parents), got population {self.population} with fire_evaluators "
                    f"{self.fire_evaluators}"
                )
            if self.fire_max_eval_steps < 0 or not 0.0 < self.fire_p_value < 1.0:
                raise ConfigError("fire_max_eval_steps must be >= 0 and fire_p_value in (0, 1)")
        if self.interval_timeout < 0:
            raise ConfigError(f"interval_timeout must be >= 0 (0: no limit), got {self.interval_timeout}")
        if self.interval_timeout and self.executor == "serial":  # a train call that never returns holds this process
            raise ConfigError(
                f"interval_timeout needs worker processes to stop, which --executor serial does not "
                f"have; use --executor local, or --interval-timeout 0 (got {self.interval_timeout:g})"
            )
        if self.time_limit < 0:
            raise ConfigError(f"time_limit must be >= 0 seconds (0: no limit), got {self.time_limit:g}")
        for text in self.priors:
            parse_prior(text)
        for text in self.mutations:
            parse_prior(text, "mutations")

    @property
    def interval_eval_every(self) -> int:
        return self.eval_every if 0 < self.eval_every < self.ready_every else self.ready_every


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _declared(cls: type) -> dict[str, tuple[Any, int | None]]:
    """Each field's type hint and, for a tuple field, the number of values it must have (None: any)."""
    hints = _field_types(cls)
    out: dict[str, tuple[Any, int | None]] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint, length = hints[f.name], None
        args = typing.get_args(hint)
        if typing.get_origin(hint) is tuple and args and args[-1] is not Ellipsis:
            length = len(args)  # tuple[float, float]
        elif typing.get_origin(hint) is tuple and not f.metadata.get("variable_length"):
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else ())
            )
            length = len(default) if isinstance(default, tuple) and default else None
        out[f.name] = (hint, length)
    return out


def _coerce(value: Any, hint: Any, where: str, length: int | None = None, default: Any = None) -> Any:
    """``value`` checked against the declared type ``hint`` (ints become floats for a float, lists become tuples);
    raises ``ConfigError`` naming ``where`` when it does not fit."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):  # type: ignore[arg-type]
            return value
        if isinstance(value, dict):
            return from_dict(hint, value, where=f"{where}.")  # type: ignore[arg-type]
        raise ConfigError(f"{where} must be an object of settings ({{NAME: VALUE, ...}}), got {value!r}")
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed or type(value) not in {type(a) for a in allowed}:  # True is not 1 here
            raise ConfigError(f"{where} must be one of {', '.join(map(str, allowed))}; got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list of values, got {value!r}")
        args = typing.get_args(hint)
        if length is not None and len(value) != length:
            like = f" (like its default {default!r})" if default else ""
            raise ConfigError(f"{where} must have {length} values{like}, got {len(value)}: {list(value)!r}")
        if not args:
            return tuple(value)
        kinds = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        return tuple(_coerce(v, kind, f"{where}[{i}]") for i, (v, kind) in enumerate(zip(value, kinds)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be a finite number, got {value}")
        return number
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _default(cls: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)  # type: ignore[arg-type]
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _checked(cls: type, name: str, value: Any, where: str) -> Any:
    hint, length = _declared(cls)[name]
    return _coerce(value, hint, where, length, _default(cls, name) if length is not None else None)


def check_fields(config: Any) -> None:
    """Check (and normalise: lists to tuples, ints to floats) every field of the dataclass ``config`` in place
    against its declared type, as ``from_dict`` does; for a dataclass's own ``__post_init__``."""
    for f in dataclasses.fields(config):
        object.__setattr__(config, f.name, _checked(type(config), f.name, getattr(config, f.name), f.name))


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, refusing keys it does not declare (nested dataclasses included) and
    values that do not fit their field's declared type, length or range of finite numbers (module docstring)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where[:-1] or 'config'} must be an object of settings ({{NAME: VALUE, ...}}), got {data!r}"
        )
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key '{where}{unknown[0]}' (known: {', '.join(sorted(names))})")
    return cls(**{k: _checked(cls, k, v, f"{where}{k}") for k, v in data.items()})


def replace_fields(config: T, overrides: dict[str, Any]) -> T:
    """A copy of ``config`` with ``overrides`` applied; keys may be dotted (``pbt.population``) or name a field of
    the nested ``pbt`` config directly (``population``)."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"overrides must hold an object of settings (NAME: VALUE), got a {type(overrides).__name__}")
    data = dataclasses.asdict(config)  # type: ignore[call-overload]
    own = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if rest:
            data.setdefault(head, {})[rest] = value
        elif key in own and isinstance(value, dict) and isinstance(data[key], dict):
            data[key] = {**data[key], **value}  # a nested config is merged, not replaced
        elif key in own:
            data[key] = value
        elif "pbt" in own:
            data["pbt"][key] = value
        else:
            raise ConfigError(f"unknown config key {key!r}")
    return from_dict(type(config), data)
