"""Search spaces and the explore step.

A search space is plain data: ``{"lr": LogUniform(1e-5, 1e-2), "unroll": IntUniform(5, 50)}``. Every prior can
``sample`` a value, ``perturb`` one by a multiplicative factor, and ``clip`` one into its bounds. ``explore`` applies
the paper's explore step to a whole set of hyperparameters and reports what it did to each, within the run's mutation
space (``pbt.mutations``: the priors, unless the task or ``--mutations`` says otherwise).

Assumptions where the paper is silent (see ``../README.md``, "Assumptions"):
- perturb results are clipped to the prior's bounds;
- an integer perturbed by a factor is rounded, and moves by at least one when rounding would leave it unchanged, so
  that a small integer (an unroll length of 5, say) is not frozen by ×0.8 / ×1.2;
- a categorical value moves to a neighbouring choice (up for a factor above 1, down otherwise, bouncing at the ends);
- ``resample`` redraws each hyperparameter from its prior with probability ``resample_probability`` (default 0.25,
  Ray Tune's library default; the paper gives none) and perturbs it otherwise, so an explored member always differs
  from its parent.
"""

from __future__ import annotations

import math
import numbers
import random
from dataclasses import dataclass
from typing import Literal, Protocol

from pbt.errors import Worded

HValue = float | int | str
HParams = dict[str, HValue]
ExploreMode = Literal["perturb", "resample", "noise", "none"]


class ConfigError(Worded, ValueError):
    """A setting, file or run directory the user must change, in one line naming it; a setting the message tells
    them to change is ``⟨name⟩`` in it, written in the caller's words (``pbt.errors``)."""


class Prior(Protocol):
    def sample(self, rng: random.Random) -> HValue: ...
    def perturb(self, value: HValue, factor: float, rng: random.Random) -> HValue: ...
    def add_noise(self, value: HValue, std: float, rng: random.Random) -> HValue: ...
    def clip(self, value: HValue) -> HValue: ...
    def grid(self, points: int) -> list[HValue]: ...


def _check_bounds(kind: str, low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{kind}: bounds must be finite, got low={low}, high={high}")
    if low > high:
        raise ConfigError(f"{kind}: lower bound {low} is greater than upper bound {high}")


@dataclass(frozen=True)
class Uniform:
    """A real hyperparameter drawn uniformly from [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_bounds(type(self).__name__, self.low, self.high)

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def perturb(self, value: HValue, factor: float, rng: random.Random) -> float:
        return self.clip(float(value) * factor)

    def add_noise(self, value: HValue, std: float, rng: random.Random) -> float:
        return self.clip(float(value) + rng.gauss(0.0, std))

    def clip(self, value: HValue) -> float:
        return min(max(float(value), self.low), self.high)

    def grid(self, points: int) -> list[HValue]:
        if points == 1:
            return [(self.low + self.high) / 2]
        return [self.low + i * (self.high - self.low) / (points - 1) for i in range(points)]


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A positive real hyperparameter whose logarithm is uniform on [log low, log high] (learning rates)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low <= 0:
            raise ConfigError(f"LogUniform: lower bound must be > 0, got {self.low}")

    def sample(self, rng: random.Random) -> float:
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))

    def add_noise(self, value: HValue, std: float, rng: random.Random) -> float:
        return self.clip(math.exp(math.log(float(value)) + rng.gauss(0.0, std)))

    def grid(self, points: int) -> list[HValue]:
        lo, hi = math.log(self.low), math.log(self.high)
        return [math.exp(v) for v in Uniform(lo, hi).grid(points)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class IntUniform:
    """An integer hyperparameter drawn uniformly from {low, ..., high} (unroll length, batch size)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if int(self.low) != self.low or int(self.high) != self.high:
            raise ConfigError(f"IntUniform: bounds must be integers, got low={self.low}, high={self.high}")
        _check_bounds("IntUniform", self.low, self.high)

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)

    def perturb(self, value: HValue, factor: float, rng: random.Random) -> int:
        old = int(value)
        new = round(old * factor)
        if new == old and factor != 1.0:
            new = old + (1 if factor > 1.0 else -1)
        return self.clip(new)

    def add_noise(self, value: HValue, std: float, rng: random.Random) -> int:
        return self.clip(round(int(value) + rng.gauss(0.0, std)))

    def clip(self, value: HValue) -> int:
        return int(min(max(round(float(value)), self.low), self.high))

    def grid(self, points: int) -> list[HValue]:
        return sorted({self.clip(v) for v in Uniform(self.low, self.high).grid(points)})


@dataclass(frozen=True)
class Categorical:
    """One of a fixed, ordered tuple of choices. Perturbing moves to a neighbouring choice."""

    choices: tuple[HValue, ...]

    def __post_init__(self) -> None:
        if len(self.choices) == 0:
            raise ConfigError("Categorical: needs at least one choice")

    def sample(self, rng: random.Random) -> HValue:
        return rng.choice(self.choices)

    def perturb(self, value: HValue, factor: float, rng: random.Random) -> HValue:
        if len(self.choices) == 1:
            return self.choices[0]
        i = self.choices.index(value)
        j = i + (1 if factor > 1.0 else -1)
        if not 0 <= j < len(self.choices):  # bounce off the end: the only neighbour
            j = i - (j - i)
        return self.choices[j]

    def add_noise(self, value: HValue, std: float, rng: random.Random) -> HValue:
        return self.perturb(value, rng.choice((0.5, 2.0)), rng)

    def clip(self, value: HValue) -> HValue:
        if value not in self.choices:
            raise ConfigError(f"Categorical: {value!r} is not one of {self.choices}")
        return value

    def grid(self, points: int) -> list[HValue]:
        return list(self.choices)


def sample(space: dict[str, Prior], rng: random.Random) -> HParams:
    """Draw one set of hyperparameters from the priors, in the space's key order."""
    return {name: prior.sample(rng) for name, prior in space.items()}


def explore(
    hparams: HParams,
    space: dict[str, Prior],
    rng: random.Random,
    mode: ExploreMode = "perturb",
    perturb_factors: tuple[float, ...] = (0.8, 1.2),
    resample_probability: float = 0.25,
    noise_std: float = 0.1,
) -> tuple[HParams, dict[str, str]]:
    """The paper's explore step: new hyperparameters near (or redrawn from the prior of) ``hparams``.

    Args:
        hparams: the hyperparameters just copied from a better member.
        space: what explore moves within (the run's mutation space: the priors unless the task or ``--mutations``
            says otherwise, ``pbt.mutations``); keys not in ``space`` are carried over unchanged, and a value
            outside its entry is redrawn from it, whatever the mode, as Ray Tune does for a list.
        rng: the caller's random generator (never the global one).
        mode: ``perturb`` multiplies each hyperparameter by a factor drawn independently from ``perturb_factors``;
            ``resample`` redraws each from ``space`` with probability ``resample_probability`` and perturbs it
            otherwise; ``noise`` adds Gaussian noise of ``noise_std`` (in log space for log-uniform priors; the toy
            example's explore); ``none`` changes nothing.

    Returns:
        The new hyperparameters and, per key, a short description of what was done (``"* 1.2"``, ``"resample"``).

    >>> new, ops = explore({"lr": 0.01}, {"lr": LogUniform(1e-4, 1.0)}, random.Random(0))
    >>> ops["lr"] in ("* 0.8", "* 1.2")
    True
    """
    new = dict(hparams)
    ops: dict[str, str] = {}
    if mode == "none":
        return new, ops
    for name, prior in space.items():
        # a value outside the space explore moves within (a uniform start where only choices may follow) joins it
        outside = not in_prior(prior, hparams[name])
        if outside or (mode == "resample" and rng.random() < resample_probability):
            new[name] = prior.sample(rng)
            ops[name] = "resample"
        elif mode == "noise":
            new[name] = prior.add_noise(hparams[name], noise_std, rng)
            ops[name] = f"+ N(0, {noise_std})"
        else:
            factor = rng.choice(perturb_factors)
            new[name] = prior.perturb(hparams[name], factor, rng)
            ops[name] = f"* {factor}"
    return new, ops


def grid(space: dict[str, Prior], points_per_dim: int) -> list[HParams]:
    """All combinations of ``points_per_dim`` evenly spaced values per prior (every choice for categoricals)."""
    combos: list[HParams] = [{}]
    for name, prior in space.items():
        combos = [{**c, name: v} for c in combos for v in prior.grid(points_per_dim)]
    return combos


ROUNDING = 1e-9  # relative to a prior's bounds: a log-spaced grid's end points miss them by this much at most


def in_prior(prior: Prior, value: object) -> bool:
    """Whether ``value`` is one a member may start from under ``prior``: a finite real number within its bounds (up
    to rounding), a whole one for an integer prior, one of the choices of a categorical one. A prior of a kind this
    module does not define accepts any value (its own methods will judge it)."""
    if isinstance(prior, Categorical):
        # True == 1: a flag is not the choice 1
        return value in prior.choices and (not isinstance(value, bool) or any(c is value for c in prior.choices))
    if not isinstance(prior, (Uniform, IntUniform)):
        return True
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        return False
    if not math.isfinite(number):
        return False
    if isinstance(prior, IntUniform):
        return number.is_integer() and prior.low <= number <= prior.high
    slack = ROUNDING * max(abs(prior.low), abs(prior.high))
    return prior.low - slack <= number <= prior.high + slack


def prior_range(prior: Prior) -> str:
    """The values ``prior`` allows, in words: ``[0.001, 0.5] (loguniform)``, ``the whole numbers 5 to 50``."""
    if isinstance(prior, Uniform):
        return f"[{prior.low!r}, {prior.high!r}] ({'loguniform' if isinstance(prior, LogUniform) else 'uniform'})"
    if isinstance(prior, IntUniform):
        return f"the whole numbers {prior.low} to {prior.high}"
    if isinstance(prior, Categorical):
        return "one of " + ", ".join(map(str, prior.choices))
    return describe(prior)


def check_initial_hparams(population: object, space: dict[str, Prior]) -> None:
    """Refuse, with a ``ConfigError`` naming the member, the hyperparameter and its prior's range, initial
    hyperparameters a member could not start from: outside its prior (``in_prior``), missing, or unknown to the task
    (an unknown key would spread to every member through exploits)."""
    if not isinstance(population, (list, tuple)):
        raise ConfigError(
            f"initial hyperparameters must be a list of dicts, one per member, got "
            f"{type(population).__name__} {repr(population)[:60]}"
        )
    for i, hparams in enumerate(population):
        where = f"initial hyperparameters of member {i}"
        if not isinstance(hparams, dict):
            raise ConfigError(
                f"{where} must be a dict of hyperparameters ({', '.join(space)}), got "
                f"{type(hparams).__name__} {repr(hparams)[:60]}"
            )
        unknown = [name for name in hparams if name not in space]
        if unknown:
            raise ConfigError(
                f"{where}: {unknown[0]!r} is not a hyperparameter of this task (it has: {', '.join(space)})"
            )
        for name, prior in space.items():
            if name not in hparams:
                raise ConfigError(f"{where}: {name} is missing (its prior: {prior_range(prior)})")
            if not in_prior(prior, hparams[name]):
                raise ConfigError(f"{where}: {name}={hparams[name]!r} is outside its prior {prior_range(prior)}")


PRIOR_KINDS = {"loguniform": LogUniform, "uniform": Uniform, "int": IntUniform}


def parse_prior(text: str, setting: str = "priors") -> tuple[str, Prior]:
    """``"lr=loguniform:1e-5:1e-2"``, ``"unroll=int:5:50"`` or ``"opt=choice:adam,sgd"`` -> (name, prior); an error
    names the ``setting`` the text came from (``priors``, ``mutations``).

    >>> parse_prior("lr=loguniform:1e-4:1e-2")
    ('lr', LogUniform(low=0.0001, high=0.01))
    """
    name, _, spec = text.partition("=")
    kind, _, args = spec.partition(":")
    if not name or not spec:
        raise ConfigError(f"{setting}: {text!r} is not NAME=KIND:ARGS (e.g. lr=loguniform:1e-5:1e-2)")
    if kind == "choice":
        return name, Categorical(tuple(_choice_value(v) for v in args.split(",")))
    if kind not in PRIOR_KINDS:
        raise ConfigError(f"{setting}: unknown kind {kind!r} in {text!r}; choose loguniform, uniform, int or choice")
    try:
        low, high = (float(v) for v in args.split(":"))
    except ValueError:
        raise ConfigError(f"{setting}: {text!r} needs two numbers, LOW:HIGH") from None
    if kind == "int":  # 1.5:3 is refused, not read as 1..3 (and nan or inf never reach int())
        if not all(math.isfinite(v) and v.is_integer() for v in (low, high)):
            raise ConfigError(
                f"{setting}: {name}: int bounds must be whole numbers, got {args!r} (e.g. {name}=int:1:3)"
            )
        low, high = int(low), int(high)  # type: ignore[assignment]
    try:
        return name, PRIOR_KINDS[kind](low, high)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(f"{setting}: {name}: {exc}") from None


def _choice_value(text: str) -> HValue:
    """A ``choice`` value as the task will get it: a whole number as an ``int``, another number as a ``float``, any
    other text as it is (``choice:0.8,0.9`` gives momentum numbers, ``choice:adam,sgd`` gives names)."""
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if math.isfinite(value) else text
    return text


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_fits(name: str, old: Prior, new: Prior, setting: str = "priors") -> None:
    """Refuse, in one line, a ``--priors`` replacement (or a mutation, ``setting``) whose values are not of the
    hyperparameter's type: text choices for a numeric one (or numbers for a named one), fractions for a whole one."""
    numeric = isinstance(old, (Uniform, IntUniform)) or (
        isinstance(old, Categorical) and all(_is_number(c) for c in old.choices)
    )
    values = new.choices if isinstance(new, Categorical) else (new.low, new.high)  # type: ignore[union-attr]
    if numeric and not all(_is_number(v) for v in values):
        raise ConfigError(
            f"{setting}: {name} is a number (its prior: {describe(old)}), so its choices must be numbers, "
            f"got {describe(new)}"
        )
    if not numeric and isinstance(old, Categorical) and any(_is_number(v) for v in values):
        raise ConfigError(
            f"{setting}: {name} is one of {', '.join(map(str, old.choices))}, so its choices must be names "
            f"like these, got {describe(new)}"
        )
    if isinstance(old, IntUniform) and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{setting}: {name} is a whole number (its prior: {describe(old)}), got {describe(new)}")


def describe(prior: Prior) -> str:
    """A prior in the ``--priors`` notation (``loguniform:1e-05:0.01``), as stored with a run; ``parse_prior`` reads
    it back."""
    if isinstance(prior, LogUniform):
        return f"loguniform:{prior.low!r}:{prior.high!r}"
    if isinstance(prior, Uniform):
        return f"uniform:{prior.low!r}:{prior.high!r}"
    if isinstance(prior, IntUniform):
        return f"int:{prior.low}:{prior.high}"
    if isinstance(prior, Categorical):
        return "choice:" + ",".join(map(str, prior.choices))
    return type(prior).__name__


def with_priors(space: dict[str, Prior], overrides: tuple[str, ...]) -> dict[str, Prior]:
    """The task's search space with some priors replaced; an unknown hyperparameter name is an error."""
    space = dict(space)
    for text in overrides:
        name, prior = parse_prior(text)
        if name not in space:
            raise ConfigError(f"priors: {name!r} is not a hyperparameter of this task (it has: {', '.join(space)})")
        check_fits(name, space[name], prior)
        space[name] = prior
    return space
