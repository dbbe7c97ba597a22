"""The one interface between the PBT core and an experiment.

An experiment module exposes ``make_task(config) -> Task``. Building a task must be cheap (no data loading): the
controller builds one to read its search space, and every worker process builds its own. The core never looks
inside a member's ``state``; it only passes it back to the task, and moves checkpoint *files* around.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pbt.space import HParams, Prior


@dataclass(frozen=True)
class Evaluation:
    """A member's evaluation: ``score`` (higher is better, or lower where the run's mode is ``min``), optional
    per-item ``samples`` (episode returns, per-sentence BLEU) that the t-test exploit compares, and any extra
    ``metrics`` worth logging."""

    score: float
    samples: tuple[float, ...] = field(default=())
    metrics: Mapping[str, float] = field(default_factory=dict)

    @staticmethod
    def of(value: float | Evaluation) -> Evaluation:
        """``evaluate()``'s return value as an ``Evaluation`` (a plain number is its score), checked: a number for a
        score (NaN is the member's failure, not the task's), finite numbers for samples, numbers for metrics."""
        if isinstance(value, Evaluation):
            return Evaluation(
                score=_evaluation_number(value.score, "score"),
                samples=_checked_samples(value.samples),
                metrics=checked_metrics(value.metrics, "evaluate() metrics"),
            )
        if not _is_number(value):
            raise TaskContractError(f"evaluate() must return a number or a pbt.task.Evaluation, got {_shown(value)}")
        return Evaluation(score=float(value))

    @property
    def finite(self) -> bool:
        return math.isfinite(self.score)


class Task(Protocol):
    """What an experiment supplies. ``state`` is whatever the experiment needs (model, optimiser, env, RNG).

    Optional attribute ``step_unit: int`` (default 1): the indivisible unit ``train`` takes steps in. A call asked
    for ``steps`` may report fewer than ``step_unit`` steps more (a task that runs whole agent steps of ``4 *
    num_envs`` frames declares that many); anything beyond is a task bug, and stops the run."""

    space: dict[str, Prior]
    """The hyperparameters PBT searches, with their priors (shared with random search)."""

    def make(self, hparams: HParams, seed: int) -> Any:
        """A fresh member: initial weights drawn from ``seed``."""
        ...

    def train(self, state: Any, hparams: HParams, steps: int) -> Mapping[str, float]:
        """Train for ``steps`` steps with ``hparams`` (applied from the first step) and return metrics. If it has
        to take more (whole unrolls, say), it reports the number actually taken as ``"steps"``: fewer than
        ``step_unit`` more than asked."""
        ...

    def evaluate(self, state: Any) -> float | Evaluation:
        """The metric PBT optimises: higher is better, or lower under ``Domain.mode`` / ``PBTConfig.mode`` min."""
        ...

    def save(self, state: Any, path: Path) -> None:
        """Write everything needed to continue training (weights, optimiser, counters, RNG) to ``path``."""
        ...

    def load(self, path: Path) -> Any:
        """Read a state written by ``save``; raise if the file is not one."""
        ...


class TaskContractError(TypeError):
    """A task method returned something the contract does not allow: a bug in the task, so the run stops at once
    instead of retrying the member."""


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}" if value is not None else "None"


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and (isinstance(value, (int, float)) or hasattr(value, "__float__"))


def checked_metrics(metrics: Any, what: str = "train() metrics") -> Mapping[str, float]:
    """``train()``'s return value (or, ``what`` naming it, an ``Evaluation``'s ``metrics``), checked: a mapping of
    names to numbers."""
    if not isinstance(metrics, Mapping):
        lead = "train() must return a mapping of metrics" if what == "train() metrics" else f"{what} must be a mapping"
        raise TaskContractError(f"{lead} (e.g. {{'loss': 0.3}}), got {_shown(metrics)}")
    bad = [k for k, v in metrics.items() if not _is_number(v)]
    if bad:
        raise TaskContractError(f"{what} must be numbers; {bad[0]!r} is {_shown(metrics[bad[0]])}")
    return metrics


def _evaluation_number(value: Any, what: str) -> float:
    if not _is_number(value):
        raise TaskContractError(f"evaluate() {what} must be a number, got {_shown(value)}")
    return float(value)


def _checked_samples(samples: Any) -> tuple[float, ...]:
    """An ``Evaluation``'s samples as a tuple of finite floats: the t-test compares them, and a NaN or a string
    there fails far from the task that made it."""
    if isinstance(samples, (str, bytes, Mapping)) or not hasattr(samples, "__iter__"):
        raise TaskContractError(f"evaluate() samples must be a sequence of numbers, got {_shown(samples)}")
    values = tuple(samples)
    for i, sample in enumerate(values):
        if not _is_number(sample):
            raise TaskContractError(f"evaluate() samples must be numbers; sample {i} is {_shown(sample)}")
        if not math.isfinite(float(sample)):
            raise TaskContractError(f"evaluate() samples must be finite; sample {i} is {float(sample)}")
    return tuple(float(sample) for sample in values)


def step_unit(task: Any) -> int:
    """The task's ``step_unit`` (see ``Task``): 1 when it declares none."""
    unit = getattr(task, "step_unit", 1)
    if isinstance(unit, bool) or not isinstance(unit, int) or unit < 1:
        raise TaskContractError(f"a task's step_unit must be a whole number >= 1, got {_shown(unit)}")
    return unit


def metrics_steps(metrics: Mapping[str, float], requested: int, unit: int = 1) -> int:
    """The number of steps a ``train`` call took: its ``"steps"`` metric, or what was asked for; more than ``unit``
    less one past what was asked is a task bug (``TaskContractError``), since the run would count, and the figures
    draw, training that never happened."""
    reported = metrics.get("steps", requested)
    try:
        steps = int(reported)
    except (ValueError, OverflowError):  # NaN, infinity
        steps = None
    if steps is None or steps != reported:
        raise TaskContractError(f"train() must report its steps as a whole number, got {_shown(reported)}")
    if steps < requested:
        raise ValueError(f"task.train took {steps} steps but {requested} were asked for")
    if steps - requested >= unit:
        raise TaskContractError(
            f"train() took {steps} steps when {requested} were asked for; the task's step_unit "
            f"({unit}) allows at most {requested + unit - 1} (a task that takes whole units of "
            "steps declares their size as step_unit)"
        )
    return steps
