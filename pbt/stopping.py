"""Stopping a run before its budget: once any member's score reaches ``stop_score`` (at or above it, or at or below
it when the run minimises), or once the run's wall time reaches ``time_limit`` seconds.

When a criterion is met, no new interval starts; intervals already running finish and are recorded, so every member's
weights have exactly the training of its step, and the compute spent is what the members' steps add up to. The run
then ends ``finished``, with a *stop record* in its metadata (``meta["stop"]``) that says why, when, and at how many
member-steps. A score stop is final: resuming the run leaves it as it is. A time limit counts the run's wall time
summed over its sittings, so a run it stopped stays stopped on resume unless the resume gives a larger limit (or 0:
none), and then trains on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from pbt.config import PBTConfig
from pbt.rows import MemberRow, ScoreRow, oriented

Stop = dict[str, Any]  # the stop record, as the run's metadata holds it


def reached_stop_score(score: float, stop_score: float, mode: str) -> bool:
    """Whether ``score`` has reached ``stop_score`` in the run's direction (at or above it, or at or below it under
    mode min): the one place a score is compared with the stop score."""
    return oriented(score, mode) >= oriented(stop_score, mode)


def _record(reason: str, members: Sequence[MemberRow], wall_seconds: float, **facts: Any) -> Stop:
    return {
        "reason": reason,
        **facts,
        "member_steps": sum(m.step for m in members),  # spent when the criterion was met
        "wall_seconds": round(wall_seconds, 3),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def score_stop(
    cfg: PBTConfig, scores: Sequence[ScoreRow], members: Sequence[MemberRow], wall_seconds: float
) -> Stop | None:
    """The stop record when one of an interval's evaluations (``scores``, in step order) reaches the stop score
    (``members``: as they are with that interval)."""
    if cfg.stop_score is None:
        return None
    hit = next((s for s in scores if reached_stop_score(s.score, cfg.stop_score, cfg.mode)), None)
    if hit is None:
        return None
    return _record(
        "stop_score",
        members,
        wall_seconds,
        stop_score=cfg.stop_score,
        member=hit.member,
        step=hit.step,
        score=hit.score,
    )


def time_is_up(cfg: PBTConfig, wall_seconds: float) -> bool:
    """Whether the run's wall time has reached its time limit (never, with a limit of 0)."""
    return bool(cfg.time_limit) and wall_seconds >= cfg.time_limit


def time_stop(cfg: PBTConfig, members: Sequence[MemberRow], wall_seconds: float) -> Stop | None:
    """The stop record when the run's wall time has reached its time limit."""
    if not time_is_up(cfg, wall_seconds):
        return None
    return _record("time_limit", members, wall_seconds, time_limit=cfg.time_limit)


def still_stopped(stop: Stop | None, cfg: PBTConfig, wall_seconds: float) -> Stop | None:
    """A stored stop record that still holds for a sitting run with ``cfg`` (None: the run may train on): a score
    stop always does; a time-limit stop unless this sitting's limit is 0 (none) or above ``wall_seconds``."""
    if stop is None or stop.get("reason") != "time_limit":
        return stop
    return stop if time_is_up(cfg, wall_seconds) else None


def describe(stop: Stop) -> str:
    """The stop in one line: why, and at how many member-steps."""
    steps = f"at {stop['member_steps']:,} member-steps"
    if stop["reason"] == "stop_score":
        return (
            f"stop score {stop['stop_score']:.6g} reached by member {stop['member']} at step {stop['step']} "
            f"(score {stop['score']:.6g}), {steps}"
        )
    return f"time limit {stop['time_limit']:g} s reached after {stop['wall_seconds']:.1f} s, {steps}"
