"""Algorithm 1 of Jaderberg et al. (2017), split where the work is done.

    for each member (asynchronously, in parallel):
        while not end of training:
            θ ← step(θ | h); p ← eval(θ)                  # run_interval: in a worker, until the member is ready
            if ready(p, t, P):
                h', θ' ← exploit(h, θ, p, P)              # exploit_and_explore: in the controller, against the
                if θ ≠ θ': h, θ ← explore(h', θ', P)      #   latest published state of the others
                           p ← eval(θ)
            update P with (θ, h, p, t)                    # Store.commit: one transaction

``run_interval`` trains a member until it is ready (``ready_every`` steps since it was last ready) or its budget
ends, evaluating every ``eval_every`` steps, and writes its checkpoint. ``exploit_and_explore`` then decides, from
what the other members have published, whether to copy one of them (weights *and* hyperparameters, by pointing at the
donor's checkpoint file) and, only if it copied, perturbs or resamples the copied hyperparameters. Since the copied
weights are the donor's, ``p ← eval(θ)`` is the donor's published score; it is not recomputed.
"""

from __future__ import annotations

import random
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pbt import exploit as exploit_rules
from pbt.config import PBTConfig
from pbt.exploit import Published
from pbt.space import HParams, Prior, explore
from pbt.store import CorruptCheckpoint, Event, MemberRow, verify_checkpoint, write_atomic
from pbt.task import Evaluation, Task, TaskContractError, checked_metrics, metrics_steps


@dataclass(frozen=True)
class Job:
    """One ready interval of one member, as sent to a worker."""

    member: int
    seed: int
    hparams: HParams
    start_step: int
    steps: int
    eval_every: int
    checkpoint_dir: str
    checkpoint: str | None  # file name in checkpoint_dir; None: make a fresh member
    checksum: str | None


@dataclass
class IntervalResult:
    member: int
    steps: int = 0
    evals: list[tuple[int, Evaluation]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    checksum: str | None = None
    error: str | None = None
    worker_died: bool = False
    corrupt_checkpoint: bool = False  # the interval could not even load its checkpoint: retrying it cannot help
    task_bug: bool = False  # a task method broke its contract (train returned None, say): the run stops at once
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    io_seconds: float = 0.0


class StateCache:
    """A worker's in-memory member states, keyed by the checksum of the checkpoint each one equals, so a member
    that comes back to the same worker un-copied is not reloaded from disk."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self.states: dict[int, tuple[str, Any]] = {}

    def get(self, member: int, checksum: str | None) -> Any | None:
        hit = self.states.get(member)
        return hit[1] if hit is not None and checksum is not None and hit[0] == checksum else None

    def put(self, member: int, checksum: str, state: Any) -> None:
        self.states.pop(member, None)
        self.states[member] = (checksum, state)
        while len(self.states) > self.capacity:  # drop the least recently stored
            del self.states[next(iter(self.states))]

    def discard(self, member: int) -> None:
        self.states.pop(member, None)


def run_interval(task: Task, job: Job, cache: StateCache) -> IntervalResult:
    """θ ← step(θ|h); p ← eval(θ), repeated until the member is ready; then save θ. Never raises: a failure is
    returned as ``error`` (an exception in the task, or a score that is NaN or infinite)."""
    result = IntervalResult(member=job.member)
    ckpt_dir = Path(job.checkpoint_dir)
    try:
        t0 = time.perf_counter()
        state = cache.get(job.member, job.checksum)
        if state is None:
            cache.discard(job.member)
            if job.checkpoint is None:
                state = task.make(dict(job.hparams), job.seed)
            else:
                path = ckpt_dir / job.checkpoint
                verify_checkpoint(path, job.checksum or "")
                state = task.load(path)
        result.io_seconds += time.perf_counter() - t0

        while result.steps < job.steps:
            chunk = min(job.eval_every, job.steps - result.steps)
            t0 = time.perf_counter()
            metrics = checked_metrics(task.train(state, dict(job.hparams), chunk))
            result.steps += metrics_steps(metrics, chunk)
            t1 = time.perf_counter()
            evaluation = Evaluation.of(task.evaluate(state))
            t2 = time.perf_counter()
            result.train_seconds += t1 - t0
            result.eval_seconds += t2 - t1
            result.metrics = {f"train/{k}": float(v) for k, v in metrics.items()}
            result.evals.append((job.start_step + result.steps, evaluation))
            if not evaluation.finite:
                raise FloatingPointError(f"score is {evaluation.score} at step {job.start_step + result.steps}")

        t0 = time.perf_counter()
        name = f"m{job.member:03d}-s{job.start_step + result.steps:010d}-{random.getrandbits(32):08x}.ckpt"
        result.checksum = write_atomic(ckpt_dir / name, lambda tmp: task.save(state, tmp))
        result.checkpoint = name
        cache.put(job.member, result.checksum, state)
        result.io_seconds += time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - any task failure is recorded, never fatal to the run
        cache.discard(job.member)
        result.corrupt_checkpoint = isinstance(exc, CorruptCheckpoint)
        result.task_bug = isinstance(exc, TaskContractError)
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        result.error = f"{type(exc).__name__}: {exc}{where}"
    return result


def decision_rng(seed: int, member: int, step: int, purpose: str) -> random.Random:
    """A generator for one decision, derived from the run seed and the member's position, so a serial run makes
    the same decisions whether or not it was interrupted and resumed."""
    return random.Random(f"{seed}:{purpose}:{member}:{step}")


def published(members: list[MemberRow]) -> list[Published]:
    """The members others may copy: those with a score and a checkpoint that have not dropped out."""
    return [
        Published(member=m.id, score=m.score, samples=m.samples)
        for m in members
        if m.score is not None and m.checkpoint is not None and m.status in ("pending", "done")
    ]


def choose_donor(me: MemberRow, members: list[MemberRow], cfg: PBTConfig, rng: random.Random) -> int | None:
    """Apply the configured exploit rule for ``me`` against the published population."""
    population = published(members)
    if cfg.exploit == "truncation":
        return exploit_rules.exploit_truncation(me.id, population, rng, cfg.truncation_fraction)
    if cfg.exploit == "ttest":
        return exploit_rules.exploit_ttest(me.id, population, rng, cfg.ttest_alpha, cfg.ttest_window)
    if cfg.exploit == "tournament":
        return exploit_rules.exploit_tournament(me.id, population, rng)
    return None


def copy_member(me: MemberRow, donor: MemberRow) -> MemberRow:
    """θ' and h' of the donor, as ``me`` sees it (its state at ``me``'s step); the member keeps its own id, seed and
    step count (the compute its slot has spent) and takes the copied weights' age."""
    return replace(me, hparams=dict(donor.hparams), checkpoint=donor.checkpoint, checksum=donor.checksum,
                   score=donor.score, samples=donor.samples, weight_age=donor.weight_age)


def explore_member(
    me: MemberRow, space: dict[str, Prior], cfg: PBTConfig, rng: random.Random
) -> tuple[MemberRow, Event]:
    new_hparams, ops = explore(me.hparams, space, rng, cfg.explore, cfg.perturb_factors, cfg.resample_probability,
                               cfg.noise_std)
    event = Event(member=me.id, step=me.step, kind="explore", old_hparams=me.hparams, new_hparams=new_hparams,
                  ops=ops, score=me.score)
    return replace(me, hparams=new_hparams), event


def exploit_and_explore(
    me: MemberRow, members: list[MemberRow], space: dict[str, Prior], cfg: PBTConfig, seed: int
) -> tuple[MemberRow, list[Event]]:
    """The ready branch of Algorithm 1 for member ``me`` (already updated with its latest interval).

    ``members`` is the population as ``me`` sees it: each member as it was at ``me``'s step (``Controller._view``),
    so the copy takes exactly the weights the decision compared. Returns the member as it should be published and the
    events that explain the change.
    """
    rng = decision_rng(seed, me.id, me.step, "ready")
    population = [me if m.id == me.id else m for m in members]
    donor_id = choose_donor(me, population, cfg, rng)
    events: list[Event] = []
    if donor_id is not None:
        donor = population[donor_id]
        events.append(Event(member=me.id, step=me.step, kind="exploit", donor=donor.id, donor_step=donor.step,
                            old_hparams=me.hparams, new_hparams=donor.hparams, score=me.score,
                            donor_score=donor.score, weight_age=donor.weight_age))
        me = copy_member(me, donor)
    if (donor_id is not None or cfg.explore_every_ready) and cfg.explore != "none":
        me, event = explore_member(me, space, cfg, rng)
        events.append(event)
    return me, events
