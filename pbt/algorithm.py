"""Algorithm 1 of Jaderberg et al. (2017): every decision it makes lives here; the controller only schedules.

    for each member (asynchronously, in parallel):
        while not end of training:
            θ ← step(θ | h); p ← eval(θ)                  # run_interval: in a worker, until the member is ready
            if ready(p, t, P):
                h', θ' ← exploit(h, θ, p, P)              # exploit_and_explore: in the controller, against the
                if θ ≠ θ': h, θ ← explore(h', θ', P)      #   latest published state of the others
                           p ← eval(θ)
            update P with (θ, h, p, t)                    # Store.commit: one transaction

The decisions, in the order a member meets them: ``after_interval`` (the ready rule, and the last-interval rule: no
exploit once the budget is spent), ``exploit_and_explore`` (exploit, copy, explore; against the population as the
member sees it at its step), and ``after_failure`` (replace, retry or drop, and when the run must stop).

``run_interval`` trains a member until it is ready (``ready_every`` steps since it was last ready) or its budget
ends, evaluating every ``eval_every`` steps, and writes its checkpoint. ``exploit_and_explore`` then decides, from
what the other members have published, whether to copy one of them (weights *and* hyperparameters, by pointing at the
donor's checkpoint file) and, only if it copied, perturbs or resamples the copied hyperparameters. Since the copied
weights are the donor's, ``p ← eval(θ)`` is the donor's published score; it is not recomputed.

Ablations of the copy (``PBTConfig.transfer``): ``weights`` copies θ (with its score and age) and keeps the copier's h;
``hparams`` copies h and keeps the copier's θ, score and age (recorded as an ``exploit_hparams`` event, since no
weights change hands). A run that replays a schedule (``follow_schedule``) neither exploits nor explores: at each ready
point its hyperparameters become the schedule's value at the weights' age.

The explore step follows ``PBTConfig.strategy``: ``pbt`` perturbs or resamples (``pbt.space.explore``); ``pb2`` has a
Gaussian-process bandit pick the copier's numeric hyperparameters (``pbt.pb2``) from the recent completed intervals
the controller passes in (``pb2.History``, read from the store). The exploit rule is the same for both.
"""

from __future__ import annotations

import errno
import random
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbt import exploit as exploit_rules

if TYPE_CHECKING:  # PB2 (numpy, scikit-learn) and FIRE (scipy) are imported only by a run that uses them
    from pbt import fire, pb2
from pbt.checkpoints import CorruptCheckpoint, verify_checkpoint, write_atomic
from pbt.config import PBTConfig
from pbt.exploit import Published
from pbt.rows import COUNTED, Event, EventKind, IntervalRow, MemberRow, MemberStatus, ScoreRow
from pbt.space import HParams, Prior, explore, sample
from pbt.task import Evaluation, Task, TaskContractError, checked_metrics, metrics_steps, step_unit


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
    storage_error: bool = False  # the disk is full or failing (ENOSPC, EIO): the run stops, no member is to blame
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
    """θ ← step(θ|h); p ← eval(θ), repeated until the member is ready; then save θ. Never raises but for
    Ctrl-C: a failure is returned as ``error`` (an exception or ``sys.exit()`` in the task, or a score that is NaN
    or infinite)."""
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

        unit = step_unit(task)
        while result.steps < job.steps:
            chunk = min(job.eval_every, job.steps - result.steps)
            t0 = time.perf_counter()
            metrics = checked_metrics(task.train(state, dict(job.hparams), chunk))
            result.steps += metrics_steps(metrics, chunk, unit)
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
    # Any task failure is recorded, never fatal to the run: sys.exit() in task code too, which would otherwise end
    # a serial run as if interrupted (a worker process would die of it, and its interval be retried). Ctrl-C is not.
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        cache.discard(job.member)
        result.corrupt_checkpoint = isinstance(exc, CorruptCheckpoint)
        result.task_bug = isinstance(exc, TaskContractError)
        result.storage_error = storage_failure(exc)
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        what = f"the task called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else str(exc)
        result.error = f"{type(exc).__name__}: {what}{where}"
    return result


STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)  # the disk, not the member: free space (or fix it), resume


def storage_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) says the disk is full or failing."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def decision_rng(seed: int, member: int, step: int, purpose: str) -> random.Random:
    """A generator for one decision, derived from the run seed and the member's position, so a serial run makes
    the same decisions whether or not it was interrupted and resumed."""
    return random.Random(f"{seed}:{purpose}:{member}:{step}")


def published(members: list[MemberRow]) -> list[Published]:
    """The members others may copy: those with a score and a checkpoint that have not dropped out."""
    return [
        Published(member=m.id, score=m.score, samples=m.samples)
        for m in members
        if m.score is not None and m.checkpoint is not None and m.status in COUNTED
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


def copy_member(me: MemberRow, donor: MemberRow, transfer: str = "both") -> MemberRow:
    """θ' and h' of the donor, as ``me`` sees it (its state at ``me``'s step); the member keeps its own id, seed and
    step count (the compute its slot has spent). The weights travel with what describes them (checkpoint, checksum,
    score, samples, age); ``transfer`` says what is copied: ``both``, ``weights`` (``me`` keeps its h) or ``hparams``
    (``me`` keeps its θ)."""
    if transfer == "hparams":
        return replace(me, hparams=dict(donor.hparams))
    hparams = dict(donor.hparams) if transfer == "both" else dict(me.hparams)
    return replace(me, hparams=hparams, checkpoint=donor.checkpoint, checksum=donor.checksum, score=donor.score,
                   samples=donor.samples, weight_age=donor.weight_age)


def copy_event(me: MemberRow, donor: MemberRow, transfer: str) -> Event:
    """The record of ``me`` copying ``donor``: an ``exploit`` when the weights change hands (its ``weight_age`` the
    copied weights' age, its ``new_hparams`` what ``me`` trains with next, the copier's own under ``weights``), an
    ``exploit_hparams`` when only the hyperparameters do (the weights, and their age, stay ``me``'s own), so a lineage
    follows weights only where they were copied."""
    copied = copy_member(me, donor, transfer)
    kind = EventKind.EXPLOIT_HPARAMS if transfer == "hparams" else EventKind.EXPLOIT
    return Event(member=me.id, step=me.step, kind=kind,
                 donor=donor.id, donor_step=donor.step, old_hparams=me.hparams, new_hparams=copied.hparams,
                 score=me.score, donor_score=donor.score, weight_age=copied.weight_age,
                 message=None if transfer == "both" else f"transfer={transfer}")


def explore_member(
    me: MemberRow, space: dict[str, Prior], cfg: PBTConfig, rng: random.Random, history: pb2.History | None = None
) -> tuple[MemberRow, Event]:
    """The explore step of ``cfg.strategy``: PBT's explore rule (``pbt.space.explore``), or PB2's bandit
    (``pbt.pb2.choose``), which learns from ``history``."""
    if cfg.strategy == "pb2":
        from pbt import pb2

        new_hparams, ops = pb2.choose(me.hparams, space, history or pb2.History(), me.step, cfg, rng)
    else:
        new_hparams, ops = explore(me.hparams, space, rng, cfg.explore, cfg.perturb_factors,
                                   cfg.resample_probability, cfg.noise_std)
    event = Event(member=me.id, step=me.step, kind=EventKind.EXPLORE, old_hparams=me.hparams, new_hparams=new_hparams,
                  ops=ops, score=me.score)
    return replace(me, hparams=new_hparams), event


def exploit_and_explore(
    me: MemberRow, members: list[MemberRow], space: dict[str, Prior], cfg: PBTConfig, seed: int,
    history: pb2.History | None = None
) -> tuple[MemberRow, list[Event]]:
    """The ready branch of Algorithm 1 for member ``me`` (already updated with its latest interval).

    ``members`` is the population as ``me`` sees it: each member as it was at ``me``'s step (``Controller._view``),
    so the copy takes exactly the weights the decision compared; ``history`` is what PB2 learns from (its explore
    step, ``cfg.strategy == "pb2"``). Returns the member as it should be published and the events that explain the
    change.
    """
    rng = decision_rng(seed, me.id, me.step, "ready")
    population = [me if m.id == me.id else m for m in members]
    donor_id = choose_donor(me, population, cfg, rng)
    events: list[Event] = []
    if donor_id is not None:
        donor = population[donor_id]
        events.append(copy_event(me, donor, cfg.transfer))
        me = copy_member(me, donor, cfg.transfer)
    if (donor_id is not None or cfg.explore_every_ready) and cfg.explore != "none":
        me, event = explore_member(me, space, cfg, rng, history)
        events.append(event)
    return me, events


@dataclass(frozen=True)
class Schedule:
    """Hyperparameters as a function of the weights' age (the training they have received): ``changes`` holds
    ``(age, hparams from that age on)`` in ascending ages, the first at age 0. A PBT run's discovered schedule
    (``pbt.results.Results.discovered_schedule``), replayed from scratch."""

    changes: tuple[tuple[int, HParams], ...]

    def __post_init__(self) -> None:
        ages = [age for age, _ in self.changes]
        if not ages or ages[0] != 0 or ages != sorted(set(ages)):
            raise ValueError(f"a schedule needs strictly ascending ages starting at 0, got {ages}")

    def at(self, age: int) -> HParams:
        """The hyperparameters in effect for weights of this age: those of the last change at or before it."""
        return dict(next(h for start, h in reversed(self.changes) if start <= age))

    def to_meta(self) -> list[dict[str, Any]]:
        return [{"age": age, "hparams": dict(h)} for age, h in self.changes]

    @classmethod
    def from_meta(cls, changes: list[dict[str, Any]]) -> Schedule:
        return cls(tuple((int(c["age"]), dict(c["hparams"])) for c in changes))


def follow_schedule(me: MemberRow, schedule: Schedule) -> tuple[MemberRow, list[Event]]:
    """The ready branch of a replay: the member's hyperparameters become the schedule's value at the age of its weights
    (no exploit, no explore); a change is recorded as a ``schedule`` event (old → new), so its lineage shows it."""
    new = schedule.at(me.weight_age)
    if new == me.hparams:
        return me, []
    return replace(me, hparams=new), [Event(member=me.id, step=me.step, kind=EventKind.SCHEDULE, old_hparams=me.hparams,
                                            new_hparams=new, score=me.score, weight_age=me.weight_age)]


def ready_decision(me: MemberRow, members: list[MemberRow], space: dict[str, Prior], cfg: PBTConfig,
                   schedule: Schedule | None = None,
                   history: pb2.History | fire.History | None = None) -> tuple[MemberRow, list[Event]]:
    """What a ready member does: follow the run's schedule when it replays one; else, by ``cfg.strategy``, exploit
    and explore (PBT's explore step, or PB2's, which learns from ``history``), or FIRE PBT's decision for the member's
    sub-population (``pbt.fire``, from ``history``)."""
    if schedule is not None:
        return follow_schedule(me, schedule)
    if cfg.strategy == "fire":
        from pbt import fire

        rng = decision_rng(cfg.seed, me.id, me.step, "ready")
        return fire.decide(me, members, space, cfg, history or fire.History(), rng)
    return exploit_and_explore(me, members, space, cfg, cfg.seed, history)


def after_interval(me: MemberRow, result: IntervalResult, cfg: PBTConfig) -> tuple[MemberRow, list[ScoreRow]]:
    """The member's new state after a successful interval, and its score rows.

    Ready rule: ready once ``ready_every`` steps have passed since it was last ready (its clock counts the steps the
    task actually took). Last-interval rule: a member that has spent its budget is done and does not exploit, so its
    final score is its own. A ready member's pending decision is recorded (``decision_due``, the step the interval
    started at) in the same commit as the interval."""
    last = result.evals[-1][1]
    # An evaluation that brings its own samples (episode returns, per-sentence BLEU) describes the current weights by
    # itself; otherwise the t-test's window is the recent scores.
    recent = me.samples + tuple(e.score for _, e in result.evals)
    samples = last.samples[-cfg.ttest_window:] if last.samples else recent[-cfg.ttest_window:]
    interval = {**result.metrics, "time/train_s": result.train_seconds, "time/eval_s": result.eval_seconds,
                "time/io_s": result.io_seconds}
    scores = [ScoreRow(member=me.id, step=step, score=ev.score,
                       metrics={f"eval/{k}": float(v) for k, v in ev.metrics.items()}
                       | (interval if i == len(result.evals) - 1 else {}))
              for i, (step, ev) in enumerate(result.evals)]
    since = me.steps_since_ready + result.steps
    ready = since >= cfg.ready_every
    finished = me.step + result.steps >= cfg.budget_steps
    member = replace(me, step=me.step + result.steps, steps_since_ready=0 if ready else since, score=last.score,
                     samples=tuple(samples), checkpoint=result.checkpoint, checksum=result.checksum, error=None,
                     weight_age=me.weight_age + result.steps, status=MemberStatus.DONE if finished else me.status,
                     decision_due=me.step if ready and not finished else None)
    return member, scores


def interval_row(before: MemberRow, after: MemberRow) -> IntervalRow | None:
    """The record of the interval that took ``before`` to ``after`` (``after_interval``), which PB2 learns from; None
    when the weights it started from had no score (a fresh member, or one started over), so no change is known."""
    if before.checkpoint is None or before.score is None or after.score is None:
        return None
    return IntervalRow(member=before.id, start_step=before.step, end_step=after.step, hparams=dict(before.hparams),
                       start_score=before.score, end_score=after.score)


@dataclass(frozen=True)
class FailureOutcome:
    """What a failed interval leads to: the member's new state, the events that say why, and, when the run cannot
    go on, the reason it stops."""

    member: MemberRow
    events: list[Event]
    stop: str | None = None


def after_failure(me: MemberRow, result: IntervalResult, members: list[MemberRow], space: dict[str, Prior],
                  cfg: PBTConfig, history: pb2.History | None = None) -> FailureOutcome:
    """Failure replacement. A task that broke its contract stops the run (every member would fail the same way);
    so does a member that failed more than ``max_failures`` times. Otherwise, by ``on_failure``: ``replace`` copies
    the best published member (as ``me`` sees it, like an exploit) and explores; ``retry`` runs the interval again
    from the member's last checkpoint (a dead worker is always retried; a corrupt checkpoint never is); ``drop``
    takes the member out."""
    failures = me.failures + 1
    failure = Event(member=me.id, step=me.step, kind=EventKind.FAILURE, message=result.error)
    if result.task_bug:
        return FailureOutcome(replace(me, status=MemberStatus.FAILED, failures=failures, error=result.error), [failure],
                              stop=f"the task broke its contract: {result.error}")
    if failures > cfg.max_failures:
        return FailureOutcome(replace(me, status=MemberStatus.FAILED, failures=failures, error=result.error), [failure],
                              stop=f"member {me.id} failed {failures} times (max_failures={cfg.max_failures}); last "
                                   f"error: {result.error}")
    me = replace(me, failures=failures, error=result.error)
    action = "retry" if result.worker_died else cfg.on_failure
    if result.corrupt_checkpoint and action == "retry":  # its file is bad: start it again some other way
        action = "replace"
    rng = decision_rng(cfg.seed, me.id, me.step, f"failure{failures}")
    # a donor that points at the same corrupt file would hand the same failure on
    donors = [p for p in published(members) if p.member != me.id
              and not (result.corrupt_checkpoint and members[p.member].checkpoint == me.checkpoint)]
    if action == "drop":
        return FailureOutcome(replace(me, status=MemberStatus.DROPPED),
                              [failure, Event(me.id, me.step, EventKind.DROP)])
    if action == "replace" and donors:
        donor = members[max(donors, key=lambda p: p.score).member]
        copied = copy_member(me, donor)
        events = [failure, Event(member=me.id, step=me.step, kind=EventKind.REPLACE, donor=donor.id,
                                 donor_step=donor.step, old_hparams=me.hparams, new_hparams=donor.hparams,
                                 donor_score=donor.score, weight_age=donor.weight_age)]
        if cfg.explore != "none":
            copied, explored = explore_member(copied, space, cfg, rng, history)
            events.append(explored)
        return FailureOutcome(copied, events)
    # retry the interval from the member's last checkpoint (or from scratch, with fresh hyperparameters)
    if result.corrupt_checkpoint:  # nobody to copy: its own weights are lost, so it starts over
        me = replace(me, checkpoint=None, checksum=None, weight_age=0)
    if me.checkpoint is None and action == "replace":
        me = replace(me, hparams=sample(space, rng))
    return FailureOutcome(me, [failure, Event(me.id, me.step, EventKind.RETRY, new_hparams=me.hparams,
                                              message=action)])
