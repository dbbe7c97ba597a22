"""The PBT settings of a run, and strict loading of any config dataclass from a plain dict.

Each experiment declares one ``Config`` dataclass for its own settings with a ``pbt: PBTConfig`` field, and a dict of
named profiles (``smoke``, ``cpu``, ``paper``). The command line is generated from these dataclasses (``pbt/cli.py``);
every field's help text is the ``help`` entry of its metadata.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pbt.space import ConfigError, parse_prior

T = TypeVar("T")


def doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field with help text: ``lr: float = doc("Adam learning rate.", default=1e-3)``."""
    return field(metadata={"help": text}, **kwargs)


# Where and how wide a run executes; they do not change what it computes, so a run may resume with other values.
EXECUTION_FIELDS = ("workers", "executor", "ray_address", "cpus_per_member", "gpus_per_member", "max_failures")


@dataclass
class PBTConfig:
    """How the population is trained, selected and varied. Steps are the task's own unit."""

    population: int = doc("Number of members trained together.", default=8)
    budget_steps: int = doc("Training steps per member (the task's unit: frames, gradient steps).", default=1000)
    ready_every: int = doc("A member is ready after this many steps since it was last ready.", default=100)
    eval_every: int = doc("Evaluate every this many steps (0: once per ready interval).", default=0)
    exploit: Literal["truncation", "ttest", "tournament", "none"] = doc(
        "Exploit rule: truncation, ttest (Welch), tournament (binary), none.", default="truncation"
    )
    explore: Literal["perturb", "resample", "noise", "none"] = doc(
        "Explore rule applied after a copy: perturb, resample, noise (additive, toy), none.", default="perturb"
    )
    explore_every_ready: bool = doc(
        "Ablation: explore at every ready event even without a copy (the toy's explore-only variant).", default=False
    )
    truncation_fraction: float = doc("Bottom fraction that copies from the top fraction.", default=0.2)
    ttest_alpha: float = doc("Significance level of Welch's t-test (assumption: the paper gives none).", default=0.05)
    ttest_window: int = doc("Number of recent score samples the t-test compares.", default=10)
    perturb_factors: tuple[float, ...] = doc("Factors perturb draws from, per hyperparameter.", default=(0.8, 1.2))
    resample_probability: float = doc("Probability that resample redraws a value from its prior.", default=0.25)
    noise_std: float = doc("Standard deviation of the additive noise explore.", default=0.1)
    priors: tuple[str, ...] = doc(
        "Replace search-space priors: NAME=loguniform:LOW:HIGH, NAME=uniform:LOW:HIGH, NAME=int:LOW:HIGH or "
        "NAME=choice:A,B.", default=())
    workers: int = doc("Worker processes (0: one per CPU core; 1 with --executor serial runs in-process).", default=0)
    executor: Literal["local", "serial", "ray"] = doc(
        "local: worker processes; serial: in-process, deterministic; ray: a Ray cluster (pip install pbt-repro[ray]).",
        default="local")
    ray_address: str = doc("Ray cluster to join with --executor ray: auto, HOST:PORT, or empty for a local one.",
                           default="")
    cpus_per_member: float = doc("CPUs Ray reserves for each running member.", default=1.0)
    gpus_per_member: float = doc("GPUs Ray reserves for each running member (fractions share a GPU).", default=0.0)
    seed: int = doc("Seed of the run; member i is made with seed + i.", default=0)
    on_failure: Literal["replace", "retry", "drop"] = doc(
        "What happens to a member whose interval fails: replace (copy a good member), retry, drop.", default="replace"
    )
    max_failures: int = doc("A member that fails more than this many times stops the run.", default=3)

    def __post_init__(self) -> None:
        self.perturb_factors = tuple(self.perturb_factors)
        positive = {"budget_steps": self.budget_steps, "ready_every": self.ready_every,
                    "ttest_window": self.ttest_window}
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
        self.priors = tuple(self.priors)
        for text in self.priors:
            parse_prior(text)
        for name in ("exploit", "explore", "executor", "on_failure"):
            allowed = typing.get_args(_field_types(PBTConfig)[name])
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")

    @property
    def interval_eval_every(self) -> int:
        return self.eval_every if 0 < self.eval_every < self.ready_every else self.ready_every


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value, where=f"{where}.")
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, refusing keys it does not declare (nested dataclasses included)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key '{where}{unknown[0]}' (known: {', '.join(sorted(names))})")
    hints = _field_types(cls)
    return cls(**{k: _coerce(v, hints[k], f"{where}{k}") for k, v in data.items()})


def replace_fields(config: T, overrides: dict[str, Any]) -> T:
    """A copy of ``config`` with ``overrides`` applied; keys may be dotted (``pbt.population``) or name a field of
    the nested ``pbt`` config directly (``population``)."""
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
