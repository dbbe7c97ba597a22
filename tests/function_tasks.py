"""A training loop written as a function (``pbt.function_task``) for the tests: it counts the steps its state has
trained, notes every start and close of the function, and misbehaves in one way when its config says so."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pbt.config import PBTConfig, doc
from pbt.function_task import function_task
from pbt.space import LogUniform
from pbt.task import Evaluation

STARTED: list[int] = []  # the count of steps each call of the function started from
CLOSED: list[int] = []  # the count its state had when the function was closed (its finally: ran)
RUNNING: list = []  # every call's generator, kept alive, so only an explicit close() runs its finally:


@dataclass
class Config:
    misbehave: str = doc(
        "none | return (the function returns after 2 steps) | shape (yields a bare score) | score (a text score) "
        "| plain (returns a list, not a generator) | tuple (its state holds a tuple, which JSON would not give back)",
        default="none",
    )
    pbt: PBTConfig = field(
        default_factory=lambda: PBTConfig(
            population=4, budget_steps=30, ready_every=5, eval_every=2, executor="serial", workers=1
        )
    )


def counting(hparams, checkpoint, seed, config):
    """x grows by lr times a noise drawn from (seed, step), so members differ and copies happen; ``count`` is the
    number of steps the state has trained."""
    if config.misbehave == "plain":
        return [(0.0, {})]
    RUNNING.append(counting_steps(hparams, checkpoint, seed, config))
    return RUNNING[-1]


def counting_steps(hparams, checkpoint, seed, config):
    state = checkpoint or {"x": 0.0, "count": 0}  # trained on in place, as a model would be
    STARTED.append(state["count"])
    try:
        while True:
            if config.misbehave == "return" and state["count"] >= 2:
                return
            state["x"] += hparams["lr"] * random.Random(f"{seed}-{state['count']}").random()
            state["count"] += 1
            if config.misbehave == "shape":
                yield state["x"]
            elif config.misbehave == "score":
                yield "high", state
            elif config.misbehave == "tuple":
                yield state["x"], {**state, "pair": (1, 2)}
            else:
                yield Evaluation(score=state["x"], metrics={"count": state["count"]}), state
    finally:
        CLOSED.append(state["count"])


make_task = function_task(counting, space={"lr": LogUniform(0.01, 1.0)})
