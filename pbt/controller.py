"""The controller schedules: it hands intervals to an executor and, as each comes back, applies the decisions of
``pbt.algorithm`` and publishes them to the store. There is no generation barrier: a member's exploit decision sees
whatever the others have published at that moment. When members outnumber workers, the member furthest behind runs
next. Run directories themselves (creation, resume, ``force``, the lock) are ``pbt.rundir``'s.

Fairness: the run emulates N members training in parallel at equal speed, so a member that decides at its step t
sees every member that has trained further *as it was at step t* (its snapshot), and a copy takes exactly those
weights. A member still running its interval towards t has no state at t yet, so the decision waits for it
(``decision_due`` stays pending, and the worker goes to another member). Every member's weights therefore receive
exactly the training of its own step count, never more and never less, and that never exceeds the budget.
The snapshots others may still copy are kept on disk: a member never starts an interval more than ``MAX_LEAD``
ready intervals ahead of the slowest member still training, so each member keeps at most ``MAX_LEAD + 2``
checkpoints (its current one included).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # PB2 (numpy, scikit-learn) is imported only by a run that explores with it
    from pbt import pb2
from pbt import fire, stopping
from pbt.algorithm import Schedule, after_failure, after_interval, decision_rng, interval_row, ready_decision
from pbt.config import PBTConfig
from pbt.domain import load as load_domain
from pbt.errors import Worded
from pbt.executor import Executor, TaskSpec, make_executor
from pbt.interval import IntervalResult, next_job
from pbt.lock import LockLost
from pbt.rows import Event, EventKind, IntervalRow, MemberRow, MemberStatus, RunStatus, ScoreRow
from pbt.space import ConfigError
from pbt.store_writer import Store

Listener = Callable[[MemberRow, Sequence[ScoreRow], Sequence[Event]], None]

MAX_LEAD = 2  # ready intervals a member may run ahead of the slowest one still training (bounds kept checkpoints)


BASELINE_METHODS = ("random_search", "grid_search")  # the methods that neither exploit nor explore
REPLAY_METHODS = ("replay", "final")  # fresh members following a finished PBT run's schedule (or its final values)


class RunFailed(Worded, RuntimeError):
    """A member (``member``) failed more often than ``max_failures`` allows, or no member finished; a setting the
    message tells the user to change is ``⟨name⟩`` in it, written in the caller's words (``pbt.errors``)."""


class Controller:
    """Drives one run directory to completion. ``run()`` may be called on a fresh or a half-finished store."""

    def __init__(self, store: Store, spec: TaskSpec, listeners: Sequence[Listener] = ()):
        self.store = store
        self.spec = spec
        self.cfg: PBTConfig = spec.config.pbt
        self.listeners = list(listeners)
        domain = load_domain(spec.module)  # explore moves within the mutation space, then through the task's explore_fn
        self.space, self.explore_fn = domain.mutation_space(spec.config), domain.explore_fn
        self.members = store.members()
        meta = store.meta()
        self.schedule = Schedule.from_meta(meta["schedule"]) if meta.get("schedule") else None  # a replay's
        if meta.get("method") in REPLAY_METHODS and self.schedule is None:
            raise ConfigError(f"{store.run_dir} is a {meta['method']} run without the schedule it replays")
        self.round: dict[str, Any] | None = None  # the serial executor's round in progress
        self.decided: list[int] = []  # members whose decision changed nothing, not yet stored
        self.pruned_to = -1  # the step below which snapshots have been pruned
        self.waits = 0  # times a worker was left idle because every member it could run had a decision to wait on
        self.stop: stopping.Stop | None = None  # once a stop criterion is met, no new interval starts
        if [m.id for m in self.members] != list(range(len(self.members))):
            raise ConfigError(f"{store.run_dir}: member ids are not 0..N-1")

    def _training(self) -> list[MemberRow]:
        """Members that will still train (and decide): pending and short of their budget."""
        return [m for m in self.members if m.status == MemberStatus.PENDING and m.step < self.cfg.budget_steps]

    def _runnable(self, in_flight: set[int]) -> list[MemberRow]:
        training = self._training()
        if not training:
            return []
        slowest = min(m.step for m in training)
        horizon = slowest // self.cfg.ready_every + MAX_LEAD
        # steps at which a member that decides before FIRE's evaluators still has its decision to make
        undecided = {m.step for m in training if m.decision_due is not None and not fire.decides_last(m.id, self.cfg)}
        return [
            m
            for m in training
            if m.id not in in_flight
            and m.step // self.cfg.ready_every <= horizon
            and self._can_decide(m, slowest, undecided)
        ]

    def _can_decide(self, me: MemberRow, slowest: int, undecided: set[int]) -> bool:
        """A ready member at step t decides only once every member that will still train has published its state at
        t (``slowest``, the lowest step among them, has reached t): compared (and copied) any earlier, a member still
        running its interval towards t would be seen as it was before it, and a copy of it would lose the difference.
        A FIRE evaluator also waits for the other members' decisions at t (``undecided``: the steps where one is still
        to come), whose outcome (its child adopting its weights) it acts on. A member with no decision due can always
        run."""
        if me.decision_due is None:
            return True
        return slowest >= me.step and not (fire.decides_last(me.id, self.cfg) and me.step in undecided)

    def _executor(self) -> Executor:
        if self.cfg.executor == "ray":  # Ray is an optional extra, imported only by a run that asks for it
            from pbt.ray_executor import RayExecutor

            return RayExecutor(self.spec, len(self.members))
        return make_executor(self.spec, len(self.members))

    def run(self) -> list[MemberRow]:
        """Train every member to its budget or until a stop criterion is met (``pbt.stopping``); return them.

        Raises ``RunFailed`` (the store then says ``failed`` and why) when a member failed more often than
        ``max_failures`` allows, now or in an earlier sitting, or when no member finished; any other error also
        marks the run ``failed``; an interruption (Ctrl-C, a signal) marks it ``interrupted``."""
        meta = self.store.meta()
        self.stop = stopping.still_stopped(meta.get("stop"), self.cfg, float(meta.get("wall_seconds", 0.0)))
        if meta.get("status") == RunStatus.FINISHED and (not self._training() or self.stop is not None):
            return self.members  # nothing to do: a finished run's record (its wall time included) stays as it is
        self.store.remove_orphan_checkpoints()  # written by intervals a killed run never committed
        self.started = time.perf_counter() - float(meta.get("wall_seconds", 0.0))
        lifted = {"stop": None} if meta.get("stop") and self.stop is None else {}  # resumed with a larger time limit
        self.store.set_meta(status=RunStatus.RUNNING, failure=None, **lifted)
        executor = None
        try:
            self._reopen_failed()
            self.spec.prepare()
            executor = self._executor()
            self.store.set_meta(slots=executor.slots)  # members trained at once, for status and progress
            if executor.lockstep:
                self._run_rounds(executor)
            else:
                self._run_async(executor)
            self._flush_decisions()
            if self.stop is None and not any(m.status == MemberStatus.DONE for m in self.members):
                raise RunFailed("no member finished: every member was dropped or failed")
        except LockLost:
            raise  # another process may own the run now: nothing more is written
        except Exception as exc:
            self._flush_decisions()
            why = str(exc) if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {exc}"
            self.store.set_meta(status=RunStatus.FAILED, failure=why, wall_seconds=self._wall())
            raise
        except BaseException:
            self._flush_decisions()
            self.store.set_meta(status=RunStatus.INTERRUPTED, wall_seconds=self._wall())
            raise
        finally:
            if executor is not None:
                executor.close()
        self.store.set_meta(
            status=RunStatus.FINISHED,
            wall_seconds=self._wall(),
            finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **({"stop": self.stop} if self.stop is not None else {}),
        )
        return self.members

    def _reopen_failed(self) -> None:
        """A member that stopped an earlier sitting by failing too often is retried if ``max_failures`` now allows
        it (resumed with a larger ``max_failures``); otherwise the run cannot finish, and says so at once."""
        for m in self.members:
            if m.status != MemberStatus.FAILED:
                continue
            if m.failures > self.cfg.max_failures:
                raise RunFailed(
                    f"member {m.id} failed {m.failures} times, more than max_failures="
                    f"{self.cfg.max_failures} allows (last error: {m.error}); resume with a larger "
                    "⟨pbt.max_failures⟩ to retry it",
                    member=m.id,
                    options=["pbt.max_failures"],
                )
            self._publish(
                replace(m, status=MemberStatus.PENDING),
                events=[
                    Event(
                        m.id,
                        m.step,
                        EventKind.RETRY,
                        new_hparams=m.hparams,
                        message=f"resumed, max_failures={self.cfg.max_failures}",
                    )
                ],
            )

    def _run_async(self, executor: Executor) -> None:
        """A ready member decides when it next gets a worker, against what the others have published by then.

        With a worker per member that is as soon as its interval is back. With fewer workers (time-slicing), deciding
        at once would compare its fresh score with the older scores of the members still waiting for a worker, so
        the first members of every round would always look good and never exploit; by the time a member gets a
        worker again the others have caught up, and each is compared at the member's own step (``_view``). The
        pending decision is in the store (``decision_due``), so a killed run makes it when it resumes."""
        in_flight: set[int] = set()
        while True:
            for slot in executor.free_slots() if not self._stopping() else ():
                runnable = self._runnable(in_flight)
                if not runnable:
                    if any(m.id not in in_flight for m in self._training()):
                        self.waits += 1  # a worker is free, but the members it could run wait for slower ones
                    break
                # furthest behind first, counted in ready intervals; within one, a member this worker already holds
                # in memory (reloading costs time, and an RL member would restart its games)
                member = min(
                    runnable,
                    key=lambda m: (m.step // self.cfg.ready_every, not executor.cached_on(slot, m.id), m.step, m.id),
                )
                self._decide(member.id)
                executor.submit(slot, next_job(self.members[member.id], self.cfg, self.store.checkpoint_dir))
                in_flight.add(member.id)
            if not in_flight:
                return
            result = executor.next_result()
            in_flight.discard(result.member)
            self._record(result)

    def _run_rounds(self, executor: Executor) -> None:
        """N workers of equal speed, emulated in one process: the members furthest behind each train an interval,
        then the ready ones decide one by one in a seeded random order, each against what the others have published
        by then. Deterministic, and free of the bias a fixed order would add (the first to decide would always
        compare its fresh score with the others' older ones).

        The round in progress (its step, the members that have trained in it, the decision order) travels in the
        store with every commit, so a run killed anywhere resumes into the same round and ends as an uninterrupted
        run would, event for event."""
        self.round = self.store.meta().get("serial_round")
        while not self._stopping():
            if self.round is None:
                runnable = self._runnable(set())
                if not runnable:
                    return
                self.round = {"low": min(m.step for m in runnable), "attempted": [], "order": None}
            low = self.round["low"]
            for m in [
                m
                for m in self._training()
                if m.step == low and m.decision_due is None and m.id not in self.round["attempted"]
            ]:
                if self._stopping():
                    return
                self.round["attempted"].append(m.id)
                executor.submit(0, next_job(m, self.cfg, self.store.checkpoint_dir))
                self._record(executor.next_result())
            if self.round["order"] is None:
                order = [m.id for m in self.members if m.decision_due == low]
                decision_rng(self.cfg.seed, -1, low, "order").shuffle(order)
                order.sort(key=lambda i: fire.decides_last(i, self.cfg))  # FIRE's evaluators after the others
                self.round["order"] = order
            for member in self.round["order"]:
                self._decide(member)
            self.round = None

    def _wall(self) -> float:
        return time.perf_counter() - self.started

    def _stopping(self) -> bool:
        """Whether a stop criterion has been met: the stop score by a published score (``_publish``), or the time
        limit, checked here. No new interval starts then."""
        self.stop = self.stop or stopping.time_stop(self.cfg, self.members, self._wall())
        return self.stop is not None

    def _publish(
        self,
        member: MemberRow,
        scores: Sequence[ScoreRow] = (),
        events: Sequence[Event] = (),
        interval: IntervalRow | None = None,
    ) -> None:
        self.members[member.id] = member
        self.stop = self.stop or stopping.score_stop(self.cfg, scores, self.members, self._wall())
        # snapshots below the slowest member that will still decide can never be copied again (all members' pruned
        # when that step moves on, the publishing member's at every commit)
        keep_from = min((m.step for m in self._training()), default=member.step)
        prune_all = keep_from != self.pruned_to
        self.pruned_to = keep_from
        meta: dict[str, Any] = {"wall_seconds": self._wall(), "wall_at": time.time()}  # status adds time since
        if self.stop is not None:  # recorded with the commit that met it, so a resume knows at once
            meta["stop"] = self.stop
        if self.round is not None:
            meta["serial_round"] = self.round
        self.store.commit(
            member,
            scores,
            events,
            meta=meta,
            keep_from=keep_from,
            decided=self.decided,
            prune_all=prune_all,
            interval=interval,
        )
        self.decided = []
        for listener in self.listeners:
            listener(member, scores, events)

    def _record(self, result: IntervalResult) -> None:
        """Publish a finished interval (θ, p, t), or what a failed one leads to (``algorithm.after_failure``)."""
        me = self.members[result.member]
        if result.error is None:
            member, scores = after_interval(me, result, self.cfg)
            # only PB2 learns from the record of an interval; other strategies do not pay for writing it
            interval = interval_row(me, member) if self.cfg.strategy == "pb2" else None
            self._publish(member, scores, interval=interval)
            return
        if result.storage_error:  # the disk, not the member: nothing is lost, no member is replaced or counted
            text = result.error.lower()
            what = "disk full" if "space" in text or "quota" in text else "disk error"
            raise RunFailed(
                f"{what}: {result.error}; free space (or fix the disk) and resume: the interval of "
                f"member {me.id} runs again from its last checkpoint"
            )
        outcome = after_failure(me, result, self._view(me), self.space, self.cfg, self._history(me), self.explore_fn)
        self._publish(outcome.member, events=outcome.events)
        if outcome.stop is not None:
            raise RunFailed(outcome.stop, member=me.id)

    def _view(self, me: MemberRow) -> list[MemberRow]:
        """The population as ``me`` sees it at its step: a member that has trained further is represented by its
        snapshot at ``me``'s step (score, samples, hyperparameters, weights and their age as they were then), so
        what the decision compares is what a copy takes, and extra training never counts; a member behind it that
        will still train is left out, so missing training never counts either."""
        training = {m.id for m in self._training()}
        view = []
        for m in self.members:
            if m.id != me.id and m.step < me.step and m.id in training:
                # its state at me's step does not exist yet: never compared, never copied (the asynchronous loop
                # waits for it, ``_can_decide``; this covers a failed member's replacement and a retried one)
                m = replace(m, score=None, samples=(), checkpoint=None, checksum=None)
            elif m.id != me.id and m.step > me.step:
                snap = self.store.snapshot_at(m.id, me.step)
                m = (
                    replace(m, score=None, samples=(), checkpoint=None, checksum=None)
                    if snap is None
                    else replace(
                        m,
                        step=snap.step,
                        weight_age=snap.weight_age,
                        hparams=dict(snap.hparams),
                        score=snap.score,
                        samples=snap.samples,
                        checkpoint=snap.checkpoint,
                        checksum=snap.checksum,
                    )
                )
            view.append(m)
        return view

    def _history(self, me: MemberRow) -> pb2.History | fire.History | None:
        """What the strategy learns from when ``me`` decides at its step, all from the store (so a resumed run
        decides as an uninterrupted one). PB2: the completed intervals in its window, and the hyperparameters PB2 gave
        other members at this step. FIRE: the copies of weights and the scores so far. PBT needs none."""
        if self.cfg.strategy == "fire":
            copies = tuple(e for e in self.store.events(EventKind.EXPLOIT) if e.step <= me.step)
            return fire.History(copies=copies, scores=self.store.score_curves(until=me.step), mode=self.cfg.mode)
        if self.cfg.strategy != "pb2":
            return None
        from pbt import pb2

        since = me.step - self.cfg.pb2_window * self.cfg.ready_every
        pending = [
            e.new_hparams
            for e in self.store.events(EventKind.EXPLORE, step=me.step)
            if e.member != me.id and e.new_hparams is not None and pb2.OP in (e.ops or {}).values()
        ]
        return pb2.History(intervals=tuple(self.store.intervals(since, me.step)), pending=tuple(pending))

    def _decide(self, member: int) -> None:
        """Make ``member``'s pending ready decision, if it has one. A decision that changes nothing is stored with
        the next commit (``decided``): until then nothing else has changed, so deciding again would decide the same."""
        me = self.members[member]
        if me.decision_due is None:
            return
        view, history = self._view(me), self._history(me)
        if self.cfg.strategy == "fire" and self.schedule is None:  # FIRE PBT's ready decision replaces Algorithm 1's
            rng = decision_rng(self.cfg.seed, me.id, me.step, "ready")
            new, events = fire.decide(me, view, self.space, self.cfg, history, rng, self.explore_fn)
        else:
            new, events = ready_decision(me, view, self.space, self.cfg, self.schedule, history, self.explore_fn)
        new = replace(new, decision_due=None)
        if events:
            self._publish(new, events=events)
        else:
            self.members[member] = new
            self.decided.append(member)

    def _flush_decisions(self) -> None:
        if self.decided:
            self.store.clear_decisions(self.decided)
            self.decided = []
