"""Algorithm 1 of Jaderberg et al. (2017): every decision it makes lives here; the controller only schedules.

    for each member (asynchronously, in parallel):
        while not end of training:
            θ ← step(θ | h); p ← eval(θ)                  # pbt.interval: in a worker, until the member is ready
            if ready(p, t, P):
                h', θ' ← exploit(h, θ, p, P)              # exploit_and_explore: in the controller, against the
                if θ ≠ θ': h, θ ← explore(h', θ', P)      #   latest published state of the others
                           p ← eval(θ)
            update P with (θ, h, p, t)                    # Store.commit: one transaction

The decisions, in the order a member meets them: ``after_interval`` (the ready rule, and the last-interval rule: no
exploit once the budget is spent), ``exploit_and_explore`` (exploit, copy, explore; against the population as the
member sees it at its step), and ``after_failure`` (replace, retry or drop, and when the run must stop).

Once an interval (``pbt.interval.run_interval``) has made a member ready, ``exploit_and_explore`` decides, from
what the other members have published, whether to copy one of them (weights *and* hyperparameters, by pointing at the
donor's checkpoint file) and, only if it copied, perturbs or resamples the copied hyperparameters. Since the copied
weights are the donor's, ``p ← eval(θ)`` is the donor's published score; it is not recomputed.

Ablations of the copy (``PBTConfig.transfer``): ``weights`` copies θ (with its score and age) and keeps the copier's h;
``hparams`` copies h and keeps the copier's θ, score and age (recorded as an ``exploit_hparams`` event, since no
weights change hands). A run that replays a schedule (``follow_schedule``) neither exploits nor explores: at each ready
point its hyperparameters become the schedule's value at the weights' age.

The explore step follows ``PBTConfig.strategy``: ``pbt`` perturbs or resamples (``pbt.space.explore``); ``pb2`` has a
Gaussian-process bandit pick the copier's numeric hyperparameters (``pbt.pb2``) from the recent completed intervals
the controller passes in (``pb2.History``, read from the store). The exploit rule is the same for both. FIRE PBT
(``pbt.fire``) makes a ready decision of its own from the same steps (``choose_donor``, ``copy_member``,
``copy_event``, ``explore_member``); the controller calls it in place of ``ready_decision``.

Every decision compares fitnesses, higher better: the scores as the task reports them under ``PBTConfig.mode`` max,
negated under min (``pbt.rows.oriented``, applied where scores are read: ``published``, PB2's score changes, FIRE's
curves). Events and the store keep the raw scores.

Nothing here reads or writes a file or the store: each decision is a function of what it is given, and returns the
member's new state and the events that explain it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pbt import exploit as exploit_rules
from pbt.config import PBTConfig
from pbt.exploit import Published
from pbt.interval import IntervalResult
from pbt.mutations import ExploreFn, apply_explore_fn
from pbt.rows import COUNTED, Event, EventKind, IntervalRow, MemberRow, MemberStatus, ScoreRow, oriented
from pbt.space import HParams, Prior, explore, sample

if TYPE_CHECKING:  # PB2 (numpy, scikit-learn) is imported only by a run that uses it
    from pbt import pb2


def decision_rng(seed: int, member: int, step: int, purpose: str) -> random.Random:
    """A generator for one decision, derived from the run seed and the member's position, so a serial run makes
    the same decisions whether or not it was interrupted and resumed."""
    return random.Random(f"{seed}:{purpose}:{member}:{step}")


def published(members: list[MemberRow], mode: str) -> list[Published]:
    """The members others may copy: those with a score and a checkpoint that have not dropped out, with their scores
    and samples as fitnesses (``oriented`` by the run's ``mode``), so every exploit rule compares higher-better."""
    return [
        Published(member=m.id, score=oriented(m.score, mode), samples=tuple(oriented(s, mode) for s in m.samples))
        for m in members
        if m.score is not None and m.checkpoint is not None and m.status in COUNTED
    ]


def choose_donor(me: MemberRow, members: list[MemberRow], cfg: PBTConfig, rng: random.Random) -> int | None:
    """Apply the configured exploit rule for ``me`` against the published population."""
    population = published(members, cfg.mode)
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
    return replace(
        me,
        hparams=hparams,
        checkpoint=donor.checkpoint,
        checksum=donor.checksum,
        score=donor.score,
        samples=donor.samples,
        weight_age=donor.weight_age,
    )


def copy_event(me: MemberRow, donor: MemberRow, transfer: str) -> Event:
    """The record of ``me`` copying ``donor``: an ``exploit`` when the weights change hands (its ``weight_age`` the
    copied weights' age, its ``new_hparams`` what ``me`` trains with next, the copier's own under ``weights``), an
    ``exploit_hparams`` when only the hyperparameters do (the weights, and their age, stay ``me``'s own), so a lineage
    follows weights only where they were copied."""
    copied = copy_member(me, donor, transfer)
    kind = EventKind.EXPLOIT_HPARAMS if transfer == "hparams" else EventKind.EXPLOIT
    return Event(
        member=me.id,
        step=me.step,
        kind=kind,
        donor=donor.id,
        donor_step=donor.step,
        old_hparams=me.hparams,
        new_hparams=copied.hparams,
        score=me.score,
        donor_score=donor.score,
        weight_age=copied.weight_age,
        message=None if transfer == "both" else f"transfer={transfer}",
    )


def explore_member(
    me: MemberRow,
    space: dict[str, Prior],
    cfg: PBTConfig,
    rng: random.Random,
    history: pb2.History | None = None,
    explore_fn: ExploreFn | None = None,
) -> tuple[MemberRow, Event]:
    """The explore step of ``cfg.strategy`` within the mutation space ``space`` (``pbt.mutations``): PBT's explore
    rule (``pbt.space.explore``), or PB2's bandit (``pbt.pb2.choose``), which learns from ``history``; then the
    task's ``explore_fn``, if it has one, on the result, with the same generator (its changes are marked in ``ops``)."""
    if cfg.strategy == "pb2":
        from pbt import pb2

        new_hparams, ops = pb2.choose(me.hparams, space, history or pb2.History(), me.step, cfg, rng)
    else:
        new_hparams, ops = explore(
            me.hparams, space, rng, cfg.explore, cfg.perturb_factors, cfg.resample_probability, cfg.noise_std
        )
    if explore_fn is not None:
        new_hparams, ops = apply_explore_fn(explore_fn, new_hparams, ops, space, rng)
    event = Event(
        member=me.id,
        step=me.step,
        kind=EventKind.EXPLORE,
        old_hparams=me.hparams,
        new_hparams=new_hparams,
        ops=ops,
        score=me.score,
    )
    return replace(me, hparams=new_hparams), event


def exploit_and_explore(
    me: MemberRow,
    members: list[MemberRow],
    space: dict[str, Prior],
    cfg: PBTConfig,
    seed: int,
    history: pb2.History | None = None,
    explore_fn: ExploreFn | None = None,
) -> tuple[MemberRow, list[Event]]:
    """The ready branch of Algorithm 1 for member ``me`` (already updated with its latest interval).

    ``members`` is the population as ``me`` sees it: each member as it was at ``me``'s step (``Controller._view``),
    so the copy takes exactly the weights the decision compared; ``space`` is what explore moves within (the
    mutation space) and ``explore_fn`` the task's own step after it; ``history`` is what PB2 learns from (its
    explore step, ``cfg.strategy == "pb2"``). Returns the member as it should be published and the events that
    explain the change.
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
        me, event = explore_member(me, space, cfg, rng, history, explore_fn)
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
    return replace(me, hparams=new), [
        Event(
            member=me.id,
            step=me.step,
            kind=EventKind.SCHEDULE,
            old_hparams=me.hparams,
            new_hparams=new,
            score=me.score,
            weight_age=me.weight_age,
        )
    ]


def ready_decision(
    me: MemberRow,
    members: list[MemberRow],
    space: dict[str, Prior],
    cfg: PBTConfig,
    schedule: Schedule | None = None,
    history: pb2.History | None = None,
    explore_fn: ExploreFn | None = None,
) -> tuple[MemberRow, list[Event]]:
    """What a ready member does: follow the run's schedule when it replays one; else exploit and explore (PBT's
    explore step, or PB2's, which learns from ``history``). FIRE PBT decides with ``pbt.fire.decide`` instead."""
    if schedule is not None:
        return follow_schedule(me, schedule)
    return exploit_and_explore(me, members, space, cfg, cfg.seed, history, explore_fn)


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
    samples = last.samples[-cfg.ttest_window :] if last.samples else recent[-cfg.ttest_window :]
    interval = {
        **result.metrics,
        "time/train_s": result.train_seconds,
        "time/eval_s": result.eval_seconds,
        "time/io_s": result.io_seconds,
    }
    scores = [
        ScoreRow(
            member=me.id,
            step=step,
            score=ev.score,
            metrics={f"eval/{k}": float(v) for k, v in ev.metrics.items()}
            | (interval if i == len(result.evals) - 1 else {}),
        )
        for i, (step, ev) in enumerate(result.evals)
    ]
    since = me.steps_since_ready + result.steps
    ready = since >= cfg.ready_every
    finished = me.step + result.steps >= cfg.budget_steps
    member = replace(
        me,
        step=me.step + result.steps,
        steps_since_ready=0 if ready else since,
        score=last.score,
        samples=tuple(samples),
        checkpoint=result.checkpoint,
        checksum=result.checksum,
        error=None,
        weight_age=me.weight_age + result.steps,
        status=MemberStatus.DONE if finished else me.status,
        decision_due=me.step if ready and not finished else None,
    )
    return member, scores


def interval_row(before: MemberRow, after: MemberRow) -> IntervalRow | None:
    """The record of the interval that took ``before`` to ``after`` (``after_interval``), which PB2 learns from; None
    when the weights it started from had no score (a fresh member, or one started over), so no change is known."""
    if before.checkpoint is None or before.score is None or after.score is None:
        return None
    return IntervalRow(
        member=before.id,
        start_step=before.step,
        end_step=after.step,
        hparams=dict(before.hparams),
        start_score=before.score,
        end_score=after.score,
    )


@dataclass(frozen=True)
class FailureOutcome:
    """What a failed interval leads to: the member's new state, the events that say why, and, when the run cannot
    go on, the reason it stops."""

    member: MemberRow
    events: list[Event]
    stop: str | None = None


def after_failure(
    me: MemberRow,
    result: IntervalResult,
    members: list[MemberRow],
    space: dict[str, Prior],
    cfg: PBTConfig,
    history: pb2.History | None = None,
    explore_fn: ExploreFn | None = None,
) -> FailureOutcome:
    """Failure replacement. A task that broke its contract stops the run (every member would fail the same way);
    so does a member that failed more than ``max_failures`` times. Otherwise, by ``on_failure``: ``replace`` copies
    the best published member (as ``me`` sees it, like an exploit) and explores; ``retry`` runs the interval again
    from the member's last checkpoint (a dead worker is always retried; a corrupt checkpoint never is); ``drop``
    takes the member out. ``space`` is the mutation space: what the replacement explores within, and what a member
    starting over with fresh hyperparameters draws them from."""
    failures = me.failures + 1
    failure = Event(member=me.id, step=me.step, kind=EventKind.FAILURE, message=result.error)
    if result.task_bug:
        return FailureOutcome(
            replace(me, status=MemberStatus.FAILED, failures=failures, error=result.error),
            [failure],
            stop=f"the task broke its contract: {result.error}",
        )
    if failures > cfg.max_failures:
        return FailureOutcome(
            replace(me, status=MemberStatus.FAILED, failures=failures, error=result.error),
            [failure],
            stop=f"member {me.id} failed {failures} times (max_failures={cfg.max_failures}); last "
            f"error: {result.error}",
        )
    me = replace(me, failures=failures, error=result.error)
    action = "retry" if result.worker_died else cfg.on_failure
    if result.corrupt_checkpoint and action == "retry":  # its file is bad: start it again some other way
        action = "replace"
    rng = decision_rng(cfg.seed, me.id, me.step, f"failure{failures}")
    # a donor that points at the same corrupt file would hand the same failure on
    donors = [
        p
        for p in published(members, cfg.mode)
        if p.member != me.id and not (result.corrupt_checkpoint and members[p.member].checkpoint == me.checkpoint)
    ]
    if action == "drop":
        return FailureOutcome(
            replace(me, status=MemberStatus.DROPPED), [failure, Event(me.id, me.step, EventKind.DROP)]
        )
    if action == "replace" and donors:
        donor = members[max(donors, key=lambda p: p.score).member]
        copied = copy_member(me, donor)
        events = [
            failure,
            Event(
                member=me.id,
                step=me.step,
                kind=EventKind.REPLACE,
                donor=donor.id,
                donor_step=donor.step,
                old_hparams=me.hparams,
                new_hparams=donor.hparams,
                donor_score=donor.score,
                weight_age=donor.weight_age,
            ),
        ]
        if cfg.explore != "none":
            copied, explored = explore_member(copied, space, cfg, rng, history, explore_fn)
            events.append(explored)
        return FailureOutcome(copied, events)
    # retry the interval from the member's last checkpoint (or from scratch, with fresh hyperparameters)
    if result.corrupt_checkpoint:  # nobody to copy: its own weights are lost, so it starts over
        me = replace(me, checkpoint=None, checksum=None, weight_age=0)
    if me.checkpoint is None and action == "replace":
        me = replace(me, hparams=sample(space, rng))
    return FailureOutcome(me, [failure, Event(me.id, me.step, EventKind.RETRY, new_hparams=me.hparams, message=action)])
