"""Small tasks for testing the core: each misbehaves in one documented way, controlled by its config."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pbt.config import PBTConfig, doc
from pbt.space import HParams, LogUniform
from pbt.task import Evaluation

METRIC = "x"


@dataclass
class Config:
    fail_member: int = doc("Member whose interval misbehaves (-1: none).", default=-1)
    fail_at_step: int = doc("First step at which it misbehaves.", default=0)
    fail_times: int = doc("How many intervals misbehave (counted across processes in marker_dir).", default=1)
    failure: str = doc(
        "raise | nan | die (the process ends) | exit (sys.exit(4)) | hang (train never returns) | none", default="none"
    )
    marker_dir: str = doc("Where failures are counted.", default="")
    overshoot: int = doc("Extra steps train takes beyond what is asked.", default=0)
    step_unit: int = doc(
        "The task's declared step_unit (0: one more than overshoot, so the overshoot is allowed).", default=0
    )
    seconds_per_step: float = doc(
        "Base time a step takes; each train call takes 0.5x to 2x of it, seeded by the "
        "member and its step, so intervals finish out of order.",
        default=0.0,
    )
    samples: str = doc(
        "Evaluation samples: none (a plain score), numbers, text ('a', ...) or nan (one is NaN).", default="none"
    )
    checkpoint_bytes: int = doc("Padding each checkpoint carries (to fill a small disk).", default=0)
    score: str = doc(
        "total: x (more training scores higher) | rate: x per step taken (a member behind the others "
        "looks as good as one ahead)",
        default="total",
    )
    pbt: PBTConfig = field(
        default_factory=lambda: PBTConfig(population=4, budget_steps=40, ready_every=10, executor="serial", workers=1)
    )


class CountingTask:
    """score = lr * steps taken (or, with ``score="rate"``, per step): deterministic, so the member with the larger
    lr is always better. The state counts the steps its weights trained, so a test can check them."""

    space: ClassVar = {"lr": LogUniform(0.01, 1.0)}

    def __init__(self, config: Config):
        self.config = config
        self.step_unit = config.step_unit or config.overshoot + 1

    def make(self, hparams: HParams, seed: int) -> dict[str, Any]:
        return {"x": 0.0, "steps": 0, "member_seed": seed}

    def _misbehave_now(self, state: dict[str, Any]) -> bool:
        c = self.config
        if c.failure == "none" or state["member_seed"] != c.fail_member or state["steps"] < c.fail_at_step:
            return False
        # exclusive create: after an exploit two members carry this seed, and under the local executor both may
        # ask at once; counting the markers and then writing one let both misbehave
        for slot in range(c.fail_times):
            try:
                (Path(c.marker_dir) / f"fail-{slot}").open("x").close()
                return True
            except FileExistsError:
                continue
        return False

    def train(self, state: dict[str, Any], hparams: HParams, steps: int) -> dict[str, float]:
        taken = steps + self.config.overshoot
        misbehave = self._misbehave_now(state)
        if misbehave and self.config.failure == "die":
            os._exit(3)
        while misbehave and self.config.failure == "hang":
            time.sleep(60)
        if misbehave and self.config.failure == "exit":
            sys.exit(4)
        if misbehave and self.config.failure == "raise":
            raise RuntimeError("injected failure")
        if self.config.seconds_per_step > 0:
            uneven = 2.0 ** random.Random(f"{state['member_seed']}:{state['steps']}").uniform(-1.0, 1.0)
            time.sleep(self.config.seconds_per_step * taken * uneven)
        state["x"] = float("nan") if misbehave else state["x"] + float(hparams["lr"]) * taken
        state["steps"] += taken
        return {"steps": taken}

    def evaluate(self, state: dict[str, Any]) -> float | Evaluation:
        score = state["x"] / max(state["steps"], 1) if self.config.score == "rate" else state["x"]
        samples = {"none": None, "numbers": (score, score), "text": ("a", "b"), "nan": (score, float("nan"))}
        if samples[self.config.samples] is None:
            return score
        return Evaluation(score=score, samples=samples[self.config.samples])  # type: ignore[arg-type]

    def save(self, state: dict[str, Any], path: Path) -> None:
        path.write_text(json.dumps(state) + "\n" + " " * self.config.checkpoint_bytes)

    def load(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())


def make_task(config: Config) -> CountingTask:
    return CountingTask(config)
