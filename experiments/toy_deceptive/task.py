"""The deceptive toy task: the greedy hyperparameter schedule is the best over one ready interval and far from the best
at the end.

Source: M. Chebykin, T. Alderliesten and P. A. N. Bosman, "To Be Greedy, or Not to Be – That Is the Question for
Population Based Training Variants", Transactions on Machine Learning Research (TMLR), 2025, §5.2
(https://openreview.net/forum?id=3qmnxysNbi; no arXiv version was found). Written anew after its authors'
code, github.com/AwesomeLemon/PBT-Zoo, ``task/toy_deceptive.py`` (the ``ToyDeceptiveTask``), with the
budget and ready interval of its ``config/toydeceptive_pbt_00.yaml``.

The task. One weight θ starts at θ0 = 0.9 and is judged on Q(θ) = 1.2 − θ² (the score; its maximum is 1.2, at θ = 0).
The B training steps fall into segments of L steps; segment k has the target T_k = 1 − kL/B, a linear decay from 1
towards 0. The hyperparameter h in force at a segment's first step, h_k, is charged c·|h_k − T_k|, and the charges
never decay: the penalty in segment k is P_k = c·Σ_{j≤k} |h_j − T_j|. Every step is one gradient step of size η on
the surrogate 1.2 − r·θ², at the rate r = max(2 − h − P_k, 0):

    θ ← θ · (1 − 2η·r),        η = 0.001, c = 0.2, θ0 = 0.9; the reference's B = 1000, L = 20 (N = B/L = 50).

A smaller h trains faster now; every departure from the target slows every later segment.

The two schedules. Whatever came before, the rate of segment k is 2 − P_{k−1} − c·T_k − (1 − c)·h for h ≤ T_k, and
falls faster above it, so the best h over one segment (one ready interval) is always the smallest one:

- greedy: h = 0 at once and for ever (the paper's words; the search space's floor, 1e-4, ends within 1e-5 of it in Q).
  Then r_k = max(2 − c·Σ_{j≤k} T_j, 0) = max(2 − c·(k+1)·(1 − kL/(2B)), 0), which reaches 0 at k = 11 of the
  reference's 50 segments: training stops there.
- best (the paper's "reduce the hyperparameter to 0 linearly"): h_k = T_k, so P_k = 0 and r_k = 2 − T_k = 1 + kL/B.

Following either, θ_B = θ0 · Π_k (1 − 2η·r_k)^{L_k} (L_k = L; the last segment's is what is left of B) and
Q = 1.2 − θ_B² (``greedy_final_objective``, ``best_final_objective``). With the reference's settings, greedy ends at
Q = 0.8270 and the linear decay at Q = 1.1979 (the best constant h, 0.74, at 1.0970); after the first ready interval
greedy leads, Q = 0.4988 against 0.4523. The smoke profile's 10 segments: greedy 0.8976, linear decay 0.9465.

The linear decay is the paper's best schedule, not the exact optimum of this objective: a unit of h below the target
in segment k gains a unit of rate there and costs c in each of the N − k segments from k on, so in the last
⌈1/c⌉ − 1 = 4 segments h = 0 pays (Q gains 1.3e-5 with the reference's settings, 0.008 with smoke's). The tests
compare with the paper's schedule.

Where this module departs from the reference, and why:
- its segments are the task's own ``segment_steps`` (default 20), where the reference uses the algorithm's ready
  interval t_step: with the same default the two coincide, and a study that varies ``--ready-every`` keeps the same
  objective;
- a member's score is Q after its last step; the reference reports Q before the last step of the interval (its curve
  records Q, then steps), one step of 20 behind;
- the reference's PBT has code to overwrite the last entry of a copied member's h history with the explored value
  (``algo/pbt_utils.py``), but its check, ``task is ToyDeceptiveTask``, compares the task instance with the class,
  so it never does: a copy keeps the donor's history, as here.

Run settings (the reference's ``toydeceptive_pbt_00``): 22 members, B = 1000 steps, ready every 20 steps, scored once
per interval, the bottom 25% copy from the top 25% (``int(22 × 0.25)`` = 5 each, ours too), explore multiplies or
divides h by 2 (clipped to the prior, h ∈ [1e-4, 1.1]), and the initial h are drawn from [0.9, 1.1]. A member's
interval costs the controller tens of milliseconds, so every profile but smoke is the reference's own size (22 × 50
intervals, a minute or two on a CPU); smoke is 4 members × 200 steps (N = 10 segments: with 6 or fewer the greedy
schedule ends ahead of the linear decay, and the task would not deceive).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pbt.algorithm import Schedule
from pbt.config import PBTConfig, doc
from pbt.space import ConfigError, HParams, Uniform
from pbt.task import Evaluation

METRIC = "Q(θ)"
CHECKPOINT_FORMAT = "pbt-repro/toy-deceptive/1"
SPACE = {"h": Uniform(1e-4, 1.1)}  # the reference's bounds; the floor keeps h off 0, where ×2 could never lift it
STATE_KEYS = {"theta", "steps", "history"}


@dataclass
class Config:
    theta_init: float = doc("Starting value of the weight θ of every member.", default=0.9)
    lr: float = doc("Step size η of gradient descent on the surrogate's θ².", default=0.001)
    penalty: float = doc(
        "Weight c of each segment's charge |h − target| in the penalty every later segment pays.", default=0.2
    )
    segment_steps: int = doc(
        "Steps per segment: the target and the charge change once per segment (the reference "
        "ties it to its ready interval, 20).",
        default=20,
    )
    h_init: tuple[float, float] = doc(
        "Range the initial population's h is drawn from (the reference's).", default=(0.9, 1.1)
    )
    pbt: PBTConfig = field(
        default_factory=lambda: PBTConfig(
            population=22,
            budget_steps=1000,
            ready_every=20,
            eval_every=0,
            exploit="truncation",
            explore="perturb",
            truncation_fraction=0.25,
            perturb_factors=(0.5, 2.0),
            executor="serial",
            workers=1,
            on_failure="retry",
        )
    )

    def __post_init__(self) -> None:
        if self.segment_steps < 1:
            raise ConfigError(f"segment_steps must be >= 1, got {self.segment_steps}")
        if self.h_init[0] > self.h_init[1]:
            raise ConfigError(f"h_init must be (low, high) with low <= high, got {self.h_init}")

    @property
    def horizon(self) -> int:
        """B: the target decays linearly to 0 over the whole budget."""
        return self.pbt.budget_steps


PROFILES = {
    "smoke": Config(pbt=replace(Config().pbt, population=4, budget_steps=200)),
    "cpu": Config(),
    "paper": Config(),
}


def q(theta: float) -> float:
    return 1.2 - theta * theta


def target(segment: int, config: Config) -> float:
    """T_k: the value the linear decay asks for in segment ``segment``."""
    return 1.0 - segment * config.segment_steps / config.horizon


def initial_hparams(config: Config) -> list[HParams]:
    """The reference's initial population: h drawn uniformly from ``h_init``, seeded by the run's seed."""
    rng = random.Random(config.pbt.seed)
    low, high = config.h_init
    return [{"h": rng.uniform(low, high)} for _ in range(config.pbt.population)]


class ToyDeceptiveTask:
    space = SPACE

    def __init__(self, config: Config):
        self.config = config

    def make(self, hparams: HParams, seed: int) -> dict[str, Any]:
        del hparams, seed  # every member starts at the same θ; nothing here is random
        return {"theta": self.config.theta_init, "steps": 0, "history": []}

    def penalty(self, history: Sequence[float]) -> float:
        """P: c times the summed distance of each begun segment's h from that segment's target."""
        return self.config.penalty * sum(abs(h - target(k, self.config)) for k, h in enumerate(history))

    def train(self, state: dict[str, Any], hparams: HParams, steps: int) -> dict[str, float]:
        h = float(hparams["h"])
        theta, history, done = state["theta"], state["history"], state["steps"]
        penalty = self.penalty(history)
        rate = max(2.0 - h - penalty, 0.0)
        for step in range(done, done + steps):
            if step % self.config.segment_steps == 0:  # a segment begins: charge the h in force now
                history.append(h)
                penalty = self.penalty(history)
                rate = max(2.0 - h - penalty, 0.0)
            theta -= self.config.lr * 2.0 * rate * theta  # gradient descent on r·θ²
        state["theta"], state["steps"] = theta, done + steps
        return {"rate": rate, "penalty": penalty}

    def evaluate(self, state: dict[str, Any]) -> Evaluation:
        return Evaluation(
            score=q(state["theta"]), metrics={"theta": state["theta"], "penalty": self.penalty(state["history"])}
        )

    def save(self, state: dict[str, Any], path: Path) -> None:
        path.write_text(json.dumps({"format": CHECKPOINT_FORMAT, **state}))

    def load(self, path: Path) -> dict[str, Any]:
        state = json.loads(path.read_text())
        tag = state.pop("format", None) if isinstance(state, dict) else None
        if not isinstance(state, dict) or set(state) != STATE_KEYS:
            raise ValueError(f"{path} is not a deceptive-toy checkpoint (keys {sorted(STATE_KEYS)})")
        begun = math.ceil(state["steps"] / self.config.segment_steps) if isinstance(state["steps"], int) else -1
        if not isinstance(state["history"], list) or len(state["history"]) != begun:
            raise ValueError(f"{path} is not a deceptive-toy checkpoint: its h history does not match its steps")
        if tag != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a deceptive-toy checkpoint (format {tag!r}, not {CHECKPOINT_FORMAT!r})")
        return state


def make_task(config: Config) -> ToyDeceptiveTask:
    return ToyDeceptiveTask(config)


# -- the known schedules, in closed form ---------------------------------------------------------------------------
# A schedule is a list of h values, one per step of training (the weights' age), so that a run's discovered
# schedule compares with it step by step: ``per_step(results.discovered_schedule(), config)``.


def greedy_schedule(config: Config) -> list[float]:
    """h = 0 from the first step: the best choice over every single ready interval."""
    return [0.0] * config.horizon


def best_schedule(config: Config) -> list[float]:
    """h = T_k in segment k: the linear decay to 0, the paper's best schedule for the final score."""
    return [target(step // config.segment_steps, config) for step in range(config.horizon)]


def per_step(schedule: Any, config: Config) -> list[float]:
    """A run's discovered schedule (``pbt.results.Results.discovered_schedule``, or anything with ``at(age)``
    returning hyperparameters) as one h per step."""
    return [float(schedule.at(step)["h"]) for step in range(config.horizon)]


def schedule_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """The mean absolute difference of two schedules' h over steps (both one value per step)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"schedules of different or no lengths: {len(a)} and {len(b)} steps")
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)


def known_distances(schedule: Sequence[float], config: Config) -> dict[str, float]:
    """A schedule's distance from the greedy and from the best schedule."""
    return {
        "greedy": schedule_distance(schedule, greedy_schedule(config)),
        "best": schedule_distance(schedule, best_schedule(config)),
    }


def final_objective(schedule: Sequence[float], config: Config) -> float:
    """Q after training one member with ``schedule`` (one h per step), by running the task itself."""
    task = ToyDeceptiveTask(config)
    state = task.make({"h": schedule[0]}, seed=0)
    start = 0
    for step in range(1, len(schedule) + 1):  # one train call per run of equal values
        if step == len(schedule) or schedule[step] != schedule[start]:
            task.train(state, {"h": schedule[start]}, step - start)
            start = step
    return task.evaluate(state).score


def _closed_form(rate: Callable[[int], float], config: Config) -> float:
    """Q = 1.2 − θ_B² with θ_B = θ0 · Π_k (1 − 2η·r_k)^{L_k}: segment k's rate r_k, held for its L_k steps."""
    length, horizon = config.segment_steps, config.horizon
    theta = config.theta_init
    for k in range(math.ceil(horizon / length)):
        theta *= (1.0 - 2.0 * config.lr * rate(k)) ** min(length, horizon - k * length)
    return q(theta)


def greedy_final_objective(config: Config) -> float:
    """Q at the end of the greedy schedule: r_k = max(2 − c·Σ_{j≤k} T_j, 0)."""

    def rate(k: int) -> float:
        targets = (k + 1) * (1.0 - k * config.segment_steps / (2.0 * config.horizon))  # Σ_{j≤k} T_j
        return max(2.0 - config.penalty * targets, 0.0)

    return _closed_form(rate, config)


def best_final_objective(config: Config) -> float:
    """Q at the end of the linear decay: no penalty, r_k = 2 − T_k."""
    return _closed_form(lambda k: 2.0 - target(k, config), config)


def known_schedules(config: Config) -> dict[str, Schedule]:
    """The greedy and the best schedule as ``Schedule``s (a change at each segment's first step)."""

    def changes(per_step_h: list[float]) -> Schedule:
        kept = [(step, {"h": h}) for step, h in enumerate(per_step_h) if step == 0 or h != per_step_h[step - 1]]
        return Schedule(tuple(kept))

    return {"greedy": changes(greedy_schedule(config)), "best": changes(best_schedule(config))}
