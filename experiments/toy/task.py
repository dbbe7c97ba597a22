"""The toy example of the paper's Figure 2.

The objective is Q(θ) = 1.2 − (θ0² + θ1²), maximal at θ = 0. A member can only follow the gradient of the
surrogate Q̂(θ|h) = 1.2 − (h0·θ0² + h1·θ1²), whose hyperparameters h decide which coordinates shrink, but it is judged
on Q. Two members start at θ = (0.9, 0.9) with h = (1, 0) and (0, 1): alone, each only ever fixes one coordinate and
stalls at Q = 1.2 − 0.81 = 0.39. Exploit lets one take the other's progress; explore lets h drift towards (1, 1).

Settings the paper does not give are assumptions (documented in README.md): 200 steps, ready every 4 steps, explore
adds N(0, 0.1) noise to h (clipped to [0, 1]), learning rate 0.01, and Q is evaluated after every step.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbt.algorithm import Schedule
from pbt.config import PBTConfig, doc
from pbt.space import HParams, Uniform
from pbt.task import Evaluation

METRIC = "Q(θ)"
CHECKPOINT_FORMAT = "pbt-repro/toy/1"
SPACE = {"h0": Uniform(0.0, 1.0), "h1": Uniform(0.0, 1.0)}


@dataclass
class Config:
    lr: float = doc("Step size of gradient ascent on the surrogate Q̂.", default=0.01)
    theta_init: tuple[float, ...] = doc("Starting point θ of every member.", default=(0.9, 0.9))
    seconds_per_step: float = doc(
        "Sleep this long per training step, to emulate a slow task (benchmarks, tests).", default=0.0
    )
    uneven_time: bool = doc(
        "Scale each train call's sleep by 0.5x to 2x, seeded by the member and its step, so "
        "members finish their intervals out of order (benchmarks).",
        default=False,
    )
    pbt: PBTConfig = field(
        default_factory=lambda: PBTConfig(
            population=2,
            budget_steps=200,
            ready_every=4,
            eval_every=1,
            exploit="truncation",
            explore="noise",
            noise_std=0.1,
            executor="serial",
            workers=1,
            on_failure="retry",
        )
    )


PROFILES = {"smoke": Config(), "cpu": Config(), "paper": Config()}


def q(theta: list[float]) -> float:
    return 1.2 - sum(t * t for t in theta)


def initial_hparams(config: Config) -> list[HParams] | None:
    """The paper's two workers, h = (1, 0) and (0, 1); a larger population samples h from the prior."""
    return [{"h0": 1.0, "h1": 0.0}, {"h0": 0.0, "h1": 1.0}] if config.pbt.population == 2 else None


class ToyTask:
    space = SPACE

    def __init__(self, config: Config):
        self.config = config

    def make(self, hparams: HParams, seed: int) -> dict[str, Any]:
        return {"theta": list(self.config.theta_init), "steps": 0, "seed": seed}

    def train(self, state: dict[str, Any], hparams: HParams, steps: int) -> dict[str, float]:
        h = (float(hparams["h0"]), float(hparams["h1"]))
        theta = state["theta"]
        pause = self.config.seconds_per_step
        if pause and self.config.uneven_time:
            pause *= 2.0 ** random.Random(f"{state.get('seed')}:{state['steps']}").uniform(-1.0, 1.0)
        for _ in range(steps):
            # gradient ascent on Q̂: dQ̂/dθ_i = −2·h_i·θ_i
            theta = [t - self.config.lr * 2.0 * hi * t for t, hi in zip(theta, h)]
            if pause:
                time.sleep(pause)
        state["theta"] = theta
        state["steps"] += steps
        return {"surrogate": 1.2 - sum(hi * t * t for hi, t in zip(h, theta))}

    def evaluate(self, state: dict[str, Any]) -> Evaluation:
        theta = state["theta"]
        return Evaluation(score=q(theta), metrics={"theta0": theta[0], "theta1": theta[1]})

    def save(self, state: dict[str, Any], path: Path) -> None:
        path.write_text(json.dumps({"format": CHECKPOINT_FORMAT, **state}))

    def load(self, path: Path) -> dict[str, Any]:
        state = json.loads(path.read_text())
        if (
            not isinstance(state, dict)
            or state.pop("format", None) != CHECKPOINT_FORMAT
            or not {"theta", "steps"} <= set(state) <= {"theta", "steps", "seed"}
        ):
            raise ValueError(f"{path} is not a toy checkpoint ({CHECKPOINT_FORMAT})")
        return state


def make_task(config: Config) -> ToyTask:
    return ToyTask(config)


def known_schedules(config: Config) -> dict[str, Schedule]:
    """h = (1, 1) throughout: every step then shrinks both coordinates as fast as the surrogate allows, so it is
    the best schedule over any single ready interval and at the end (greed costs nothing on this toy)."""
    return {"best": Schedule(((0, {"h0": 1.0, "h1": 1.0}),))}
