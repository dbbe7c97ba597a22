"""A training loop written as a function, the way Ray Tune's function API has it, run as a ``Task``.

A Ray Tune user writes ``def train_fn(config)``: it restores from ``tune.get_checkpoint()``, loops, and calls
``tune.report(metrics, checkpoint=...)`` every iteration. Here the function is a generator that gets the
hyperparameters and the state to start from, and ``yield``s its score and its state once per step, where Ray's calls
``tune.report``::

    def train(hparams, checkpoint, seed, config):
        state = checkpoint or {"x": 5.0}  # checkpoint: None for a fresh member, else the state it last yielded
        while True:
            state["x"] -= hparams["lr"] * 2 * state["x"]  # one step
            yield -state["x"] ** 2, state  # (score, state): a number or a pbt.task.Evaluation, and the state

    make_task = function_task(train, space={"lr": LogUniform(0.001, 0.5)})  # Domain(make_task=...) takes it too

The core sees an ordinary task (``pbt.task.Task``), so nothing else changes. Each ``yield`` is one step: ``budget_steps``,
``ready_every`` and ``eval_every`` count yields. ``train(state, hparams, steps)`` starts the function from the member's
state with the hyperparameters in effect, takes exactly ``steps`` yields, and closes it (its ``finally:`` blocks run),
so a member's state has exactly the training of its step, never a step more; ``evaluate`` is the score of the last
yield. With the default ``eval_every`` the function runs once per ready interval. ``seed`` is the seed a fresh member
is drawn from (after a copy, the donor's): keep it with the state, as a ``Task``'s ``make(hparams, seed)`` would.
``config`` is the task's config object (the fixed settings; the hyperparameters come apart, in ``hparams``).

A checkpoint is the state with its seed: written with ``torch.save`` when the task module has imported torch (and read
back with ``torch.load(weights_only=True)``: tensors, state dicts, numbers, strings, lists, dicts), as JSON otherwise
(dicts with string keys, lists, strings, numbers, booleans, None). A state neither can hold needs a ``Task`` class.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbt.space import HParams, Prior
from pbt.task import Evaluation, TaskContractError

TrainFunction = Callable[[HParams, Any, int, Any], Generator[tuple[float | Evaluation, Any], None, None]]
CHECKPOINT_FORMAT = "pbt-function-task/1"
YIELD_SHAPE = "(score, state), the score a number or a pbt.task.Evaluation"
_ENDED = object()  # what next() gives for a function that returned


@dataclass
class FunctionState:
    """A member of a function task: the state its function last yielded (None before its first step), the seed it
    was drawn from, and the score of its last yield since it was made or loaded."""

    state: Any
    seed: int
    score: float | Evaluation | None = None


class FunctionTask:
    """``pbt.task.Task`` for a generator function ``train(hparams, checkpoint, seed, config)`` (module docstring)."""

    def __init__(self, train: TrainFunction, space: Mapping[str, Prior], config: Any):
        self.train_function = train
        self.space = dict(space)
        self.config = config

    def make(self, hparams: HParams, seed: int) -> FunctionState:
        return FunctionState(state=None, seed=seed)

    def train(self, member: FunctionState, hparams: HParams, steps: int) -> Mapping[str, float]:
        name = getattr(self.train_function, "__name__", "the train function")
        reports = self.train_function(hparams, member.state, member.seed, self.config)
        if not inspect.isgenerator(reports):
            raise TaskContractError(f"{name} must be a generator function that yields {YIELD_SHAPE} once per step")
        try:
            for taken in range(steps):
                report = next(reports, _ENDED)
                if report is _ENDED:
                    raise TaskContractError(
                        f"{name} returned after {taken} of {steps} steps; it must yield once per step for as long "
                        "as it is run (loop with while True: the run stops it at budget_steps)"
                    )
                member.score, member.state = checked_report(report, name)
        finally:
            reports.close()  # the function's finally: blocks run now, and it takes no step beyond the last yield
        return {}

    def evaluate(self, member: FunctionState) -> float | Evaluation:
        if member.score is None:
            raise TaskContractError("a function task's score is its last yield's: train the member first")
        return member.score

    def save(self, member: FunctionState, path: Path) -> None:
        record = {"format": CHECKPOINT_FORMAT, "seed": member.seed, "state": member.state}
        torch = sys.modules.get("torch")  # only a task module that imported torch holds tensors
        if torch is not None:
            with open(path, "wb") as f:  # a file object: torch.save names the archive after a path it is given
                torch.save(record, f)
            return
        unplain = first_unplain(member.state, "state")
        if unplain:
            raise TaskContractError(
                f"a function task's state must be JSON data (dicts with string keys, lists, strings, numbers) or, "
                f"in a module that imports torch, what torch.load(weights_only=True) reads; {unplain}"
            )
        path.write_text(json.dumps(record))

    def load(self, path: Path) -> FunctionState:
        if path.read_bytes()[:2] == b"PK":  # torch.save's zip archive
            import torch

            record = torch.load(path, map_location="cpu", weights_only=True)
        else:
            record = json.loads(path.read_text())
        if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a function task's checkpoint")
        return FunctionState(state=record["state"], seed=record["seed"])


def checked_report(report: Any, name: str) -> tuple[float | Evaluation, Any]:
    """A yield of the train function, checked: ``(score, state)`` with a number or an ``Evaluation`` for the score."""
    if not (isinstance(report, tuple) and len(report) == 2):
        raise TaskContractError(f"{name} must yield {YIELD_SHAPE}; it yielded {shown(report)}")
    score, state = report
    try:
        Evaluation.of(score)
    except TaskContractError:
        raise TaskContractError(f"{name} must yield {YIELD_SHAPE}; its score is {shown(score)}") from None
    return score, state


def shown(value: Any) -> str:
    """``value``'s type and the start of its repr, on one line (a tensor's repr spans several)."""
    return f"{type(value).__name__} {' '.join(repr(value).split())[:60]}"


def first_unplain(value: Any, where: str) -> str | None:
    """Where ``value`` holds something JSON would not give back as it was (a tuple, a non-string key, an object),
    or None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has the key {key!r}"
            found = first_unplain(item, f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, list):
        return next((found for i, item in enumerate(value) if (found := first_unplain(item, f"{where}[{i}]"))), None)
    if value is None or isinstance(value, (str, int, float)):
        return None
    return f"{where} is a {type(value).__name__}"


def function_task(train: TrainFunction, space: Mapping[str, Prior]) -> Callable[[Any], FunctionTask]:
    """``make_task(config)`` for a generator function ``train(hparams, checkpoint, seed, config)`` that yields
    ``(score, state)`` once per step (module docstring): give it to ``Domain(make_task=...)``, or name it
    ``make_task`` in the task module.

    Args:
        train: The training loop, a generator function.
        space: The hyperparameters PBT searches, with their priors, as a task's ``space``.

    Returns:
        ``make_task(config) -> FunctionTask``.
    """
    return functools.partial(FunctionTask, train, dict(space))
