"""A task whose momentum starts anywhere in [0.5, 0.99] but is explored only among 0.8, 0.9 and 0.99, and whose
explore function rounds the step size to two significant digits (it also draws from the decision's generator)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pbt.config import PBTConfig, doc
from pbt.domain import Domain
from pbt.space import HParams, LogUniform, Uniform

MOMENTA = (0.8, 0.9, 0.99)


@dataclass
class Config:
    speed: float = doc("Score gained per step at lr x momentum = 1.", default=1.0)
    pbt: PBTConfig = field(
        default_factory=lambda: PBTConfig(population=6, budget_steps=60, ready_every=10, executor="serial", workers=1)
    )


class MomentumTask:
    """score = the sum over steps of lr x momentum: the member with the larger product is better."""

    space: ClassVar = {"lr": LogUniform(0.01, 0.5), "momentum": Uniform(0.5, 0.99)}
    mutations: ClassVar = {"momentum": list(MOMENTA)}

    def __init__(self, config: Config):
        self.config = config

    def make(self, hparams: HParams, seed: int) -> dict[str, Any]:
        return {"x": 0.0}

    def train(self, state: dict[str, Any], hparams: HParams, steps: int) -> dict[str, float]:
        state["x"] += self.config.speed * float(hparams["lr"]) * float(hparams["momentum"]) * steps
        return {"x": state["x"]}

    def evaluate(self, state: dict[str, Any]) -> float:
        return state["x"]

    def save(self, state: dict[str, Any], path) -> None:
        path.write_text(json.dumps(state))

    def load(self, path) -> dict[str, Any]:
        return json.loads(path.read_text())


def two_digits(hparams: HParams, rng: random.Random) -> HParams:
    rng.random()  # a draw from the decision's generator, so a resumed serial run must make it too
    hparams["lr"] = float(f"{hparams['lr']:.2g}")
    return hparams


def make_task(config: Config) -> MomentumTask:
    return MomentumTask(config)


DOMAIN = Domain(make_task=make_task, config=Config, profiles={"smoke": Config()}, explore_fn=two_digits)
