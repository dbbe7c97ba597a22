"""What the store holds, as Python values: members, their published snapshots, scores, completed intervals and
events, and the statuses and kinds they take (``pbt.store`` reads them, ``pbt.store_writer`` writes them).

A member's *step* counts the training its slot has done (compute); its *weight age* counts the training the weights it
holds have received, through every copy. They differ after a copy, and the age never exceeds the step (a copy takes
the donor's weights as they were at the copier's step, see ``Snapshot``). Each member's published states are kept as
*snapshots* (with their checkpoints) while a member that is behind may still copy them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pbt.space import HParams


class MemberStatus(StrEnum):
    """Where a member stands: still training, done with its budget, failed (it stopped the run) or dropped."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    DROPPED = "dropped"


# members whose latest score counts and who may be copied (dropped and failed ones neither count nor are copied)
COUNTED = (MemberStatus.PENDING, MemberStatus.DONE)

Mode = Literal["max", "min"]  # which way a run's score is better: a reward is maximised, a loss minimised


def oriented(score: float, mode: str) -> float:
    """The score as a fitness, higher better: ``score`` when the run maximises it, ``-score`` when it minimises it.
    Every decision and every "best" compares fitnesses; the store, tables and figures keep the raw score."""
    return -score if mode == "min" else score


def run_mode(config: dict[str, Any]) -> Mode:
    """The mode a run's stored config records (``PBTConfig.mode``, resolved when the run was opened), read without
    importing the task."""
    # "auto" (or no mode) is stored only where no domain resolved it: a store written before the field existed, when
    # every run maximised, or one made with RunDir.open directly, whose decisions (``oriented``) maximised too
    return "min" if config["pbt"].get("mode") == "min" else "max"


class EventKind(StrEnum):
    """What an event records: a copy of weights and hyperparameters (``exploit``), of hyperparameters only
    (``exploit_hparams``), an explore, a replay's schedule change, a failure and what followed it (``replace``,
    ``drop``, ``retry``)."""

    EXPLOIT = "exploit"
    EXPLOIT_HPARAMS = "exploit_hparams"
    EXPLORE = "explore"
    SCHEDULE = "schedule"
    FAILURE = "failure"
    REPLACE = "replace"
    DROP = "drop"
    RETRY = "retry"


class RunStatus(StrEnum):
    """A run's stored status (``StoreReader.state`` tells a killed ``running`` run from a live one)."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class MemberRow:
    id: int
    seed: int
    hparams: HParams
    step: int = 0
    steps_since_ready: int = 0
    score: float | None = None
    samples: tuple[float, ...] = ()
    checkpoint: str | None = None
    checksum: str | None = None
    status: str = MemberStatus.PENDING
    failures: int = 0
    error: str | None = None
    weight_age: int = 0  # training steps the weights it holds received, through every copy (<= step)
    # set when an interval made the member ready, in the same transaction, and cleared with its decision: a ready
    # decision survives a kill. Its value is the step the interval started at (the serial executor's round).
    decision_due: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """A member's published state at one step: what another member at that step (or later, until this member's
    next snapshot) copies."""

    member: int
    step: int
    weight_age: int
    hparams: HParams
    score: float | None
    samples: tuple[float, ...]
    checkpoint: str
    checksum: str


@dataclass(frozen=True)
class ScoreRow:
    member: int
    step: int
    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class IntervalRow:
    """One completed interval of one member: the hyperparameters it trained with, and the score of its weights
    before it (the member's published score; a donor's, after a copy) and after it. What PB2 learns from."""

    member: int
    start_step: int
    end_step: int
    hparams: HParams
    start_score: float
    end_score: float


@dataclass(frozen=True)
class Event:
    member: int
    step: int
    kind: str  # an EventKind
    donor: int | None = None
    donor_step: int | None = None
    old_hparams: HParams | None = None
    new_hparams: HParams | None = None
    ops: dict[str, str] | None = None
    score: float | None = None
    donor_score: float | None = None
    message: str | None = None
    time: float = field(default_factory=time.time)
    weight_age: int | None = None  # for a copy: the training steps the copied weights had received
