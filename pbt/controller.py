"""The controller: starts or resumes a run, hands intervals to an executor, and applies Algorithm 1's ready branch
as each member's interval comes back. There is no generation barrier: a member's exploit decision sees whatever the
others have published at that moment. When members outnumber workers, the member furthest behind runs next.

Fairness: the run emulates N members training in parallel at equal speed, so a member that decides at its step t
sees every member that has trained further *as it was at step t* (its snapshot), and a copy takes exactly those
weights. No member's weights ever receive more training than its own step count, which never exceeds the budget.
The snapshots others may still copy are kept on disk: a member never starts an interval more than ``MAX_LEAD``
ready intervals ahead of the slowest member still training, so each member keeps at most ``MAX_LEAD + 2``
checkpoints (its current one included).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pbt.algorithm import IntervalResult, Job, after_failure, after_interval, decision_rng, exploit_and_explore
from pbt.config import EXECUTION_FIELDS, PBTConfig
from pbt.domain import load as load_domain
from pbt.executor import Executor, LocalExecutor, SerialExecutor, TaskSpec, concurrency, cpu_count
from pbt.space import ConfigError, HParams, describe, sample, with_priors
from pbt.store import LOCK_NAME, Event, MemberRow, RunLock, ScoreRow, Store

Listener = Callable[[MemberRow, Sequence[ScoreRow], Sequence[Event]], None]

MAX_LEAD = 2  # ready intervals a member may run ahead of the slowest one still training (bounds kept checkpoints)


class RunFailed(RuntimeError):
    """A member failed more often than ``max_failures`` allows."""


def git_commit() -> str:
    """The commit of the code that runs, with ``+dirty`` when the tree has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    return {"node": platform.node(), "platform": platform.platform(), "processor": platform.machine(),
            "cpus": cpu_count(), "python": platform.python_version()}


def _config_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples become lists, as they are stored


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} != {b!r}"]


def prepare_run_dir(
    out: Path, domain: str, method: str, config: Any, initial_hparams: list[HParams] | None, space: dict,
    force: bool = False, resume: bool = False, metric: str = "score", module: str | None = None,
) -> Store:
    """Create a new run directory, or reopen ``out`` when ``resume`` is set and it holds the same run; the store
    returned owns the directory (``store.lock``) until it is closed.

    Refuses a non-empty directory unless ``resume`` (the same run) or ``force`` (which replaces a run directory, and
    nothing else) is given. A directory whose run never trained a step is started over, so a run that failed at
    start-up (wrong data path, say) can be run again with corrected settings. Creation is atomic: the run is built
    in a hidden folder beside ``out`` and renamed into place, so a kill at any moment leaves nothing or a whole run.
    """
    pbt: PBTConfig = config.pbt
    wanted = {"domain": domain, "method": method, "config": _config_dict(config)}
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a run directory; choose another --out")
    if initial_hparams is not None and len(initial_hparams) != pbt.population:
        raise ConfigError(f"population is {pbt.population} but {len(initial_hparams)} initial configurations given")
    replace_old = False
    if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
        lock = RunLock(out)  # one owner at a time: refused at once while another process owns it
        try:
            store = Store.open_existing(out) if Store.exists(out) else None
        except BaseException:
            lock.release()
            raise
        have = store.meta() if store is not None else {}
        untrained = store is not None and (not have.get("domain") or not store.trained_any())
        if store is not None and resume and not untrained:
            diff = [d for d in _differences({k: have.get(k) for k in wanted}, wanted)
                    if d.split(":")[0].removeprefix("config.pbt.") not in EXECUTION_FIELDS]
            if diff:
                store.close()
                lock.release()
                raise ConfigError(f"{out} belongs to a different run ({'; '.join(diff[:3])}); choose another --out")
            store.lock = lock
            return store
        if store is not None:
            store.close()
        if not (force or untrained):
            lock.release()
            what = "holds a run" if store is not None else "is not empty"
            raise ConfigError(f"{out} {what}; use --resume to continue it or --force to replace it")
        if store is None:  # --force replaces runs only: never a folder of other files
            found = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
            lock.release()
            raise ConfigError(f"{out} holds files that are not a run ({', '.join(found[:3])}); --force only "
                              "replaces a run directory, so remove them yourself or choose another --out")
        replace_old = True
    rng = random.Random(f"{pbt.seed}:init")  # shared by PBT and random search: same seed, same initial population
    hparams = initial_hparams or [sample(space, rng) for _ in range(pbt.population)]
    # the module (so a resume finds the task again) and the priors (so figures need not build the task) go with it
    meta = dict(**wanted, metric=metric, module=module or domain, space={k: describe(p) for k, p in space.items()},
                initial_hparams=hparams, seed=pbt.seed, git_commit=git_commit(),
                machine=machine(), started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), wall_seconds=0.0,
                status="running")
    members = [MemberRow(id=i, seed=pbt.seed + i, hparams=dict(h)) for i, h in enumerate(hparams)]
    built = _build_run(out, members, meta)
    if replace_old:
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)  # the old run, lock and all, leaves; the new one takes its name
        os.rename(built, out)
        lock.release()
        shutil.rmtree(old, ignore_errors=True)
    else:
        try:
            os.rename(built, out)  # replaces an empty directory; fails if another process got there first
        except OSError as exc:
            shutil.rmtree(built, ignore_errors=True)
            raise ConfigError(f"{out} was created by another process meanwhile; choose another --out") from exc
    store = Store(out)
    store.lock = RunLock(out)
    return store


def _build_run(out: Path, members: list[MemberRow], meta: dict[str, Any]) -> Path:
    """A complete new run in a hidden folder beside ``out`` (left-overs of creations killed earlier are removed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.creating-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    built = out.with_name(f".{out.name}.creating-{os.getpid()}")
    shutil.rmtree(built, ignore_errors=True)
    try:
        store = Store(built)
    except (PermissionError, sqlite3.OperationalError) as exc:
        raise ConfigError(f"cannot create a run in {out.parent}: {exc}") from exc
    try:
        store.initialise(members, meta)
    finally:
        store.close()
    return built


class Controller:
    """Drives one run directory to completion. ``run()`` may be called on a fresh or a half-finished store."""

    def __init__(self, store: Store, spec: TaskSpec, listeners: Sequence[Listener] = ()):
        self.store = store
        self.spec = spec
        self.cfg: PBTConfig = spec.config.pbt
        self.listeners = list(listeners)
        self.space = with_priors(spec.build().space, self.cfg.priors)
        self.members = store.members()
        self.round: dict[str, Any] | None = None  # the serial executor's round in progress
        self.decided: list[int] = []  # members whose decision changed nothing, not yet stored
        if [m.id for m in self.members] != list(range(len(self.members))):
            raise ConfigError(f"{store.run_dir}: member ids are not 0..N-1")

    def _executor(self) -> Executor:
        population = len(self.members)
        if self.cfg.executor == "serial":
            return SerialExecutor(self.spec, cache_size=population)
        if self.cfg.executor == "ray":
            from pbt.ray_executor import RayExecutor  # Ray is an optional extra

            return RayExecutor(self.spec, population)
        workers = concurrency(self.cfg, population)
        return LocalExecutor(self.spec, workers=workers, cache_size=math.ceil(population / workers))

    def _training(self) -> list[MemberRow]:
        """Members that will still train (and decide): pending and short of their budget."""
        return [m for m in self.members if m.status == "pending" and m.step < self.cfg.budget_steps]

    def _runnable(self, in_flight: set[int]) -> list[MemberRow]:
        training = self._training()
        if not training:
            return []
        horizon = min(m.step for m in training) // self.cfg.ready_every + MAX_LEAD
        return [m for m in training if m.id not in in_flight and m.step // self.cfg.ready_every <= horizon]

    def _job(self, m: MemberRow) -> Job:
        steps = min(self.cfg.ready_every - m.steps_since_ready, self.cfg.budget_steps - m.step)
        return Job(member=m.id, seed=m.seed, hparams=m.hparams, start_step=m.step, steps=steps,
                   eval_every=self.cfg.interval_eval_every, checkpoint_dir=str(self.store.checkpoint_dir),
                   checkpoint=m.checkpoint, checksum=m.checksum)

    def run(self) -> list[MemberRow]:
        """Train every member to its budget; return the final population.

        Raises ``RunFailed`` (the store then says ``failed`` and why) when a member failed more often than
        ``max_failures`` allows, now or in an earlier sitting, or when no member finished; any other error also
        marks the run ``failed``; an interruption (Ctrl-C, a signal) marks it ``interrupted``."""
        if self.store.meta().get("status") == "finished" and not self._training():
            return self.members  # nothing to do: a finished run's record (its wall time included) stays as it is
        self.store.remove_orphan_checkpoints()  # written by intervals a killed run never committed
        self.started = time.perf_counter() - float(self.store.meta().get("wall_seconds", 0.0))
        self.store.set_meta(status="running", failure=None)
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
            if not any(m.status == "done" for m in self.members):
                raise RunFailed("no member finished: every member was dropped or failed")
        except Exception as exc:
            self._flush_decisions()
            why = str(exc) if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {exc}"
            self.store.set_meta(status="failed", failure=why, wall_seconds=self._wall())
            raise
        except BaseException:
            self._flush_decisions()
            self.store.set_meta(status="interrupted", wall_seconds=self._wall())
            raise
        finally:
            if executor is not None:
                executor.close()
        self.store.set_meta(status="finished", wall_seconds=self._wall(),
                            finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        return self.members

    def _reopen_failed(self) -> None:
        """A member that stopped an earlier sitting by failing too often is retried if ``max_failures`` now allows
        it (resumed with a larger ``--max-failures``); otherwise the run cannot finish, and says so at once."""
        for m in self.members:
            if m.status != "failed":
                continue
            if m.failures > self.cfg.max_failures:
                raise RunFailed(f"member {m.id} failed {m.failures} times, more than max_failures="
                                f"{self.cfg.max_failures} allows (last error: {m.error}); resume with a larger "
                                "--max-failures to retry it")
            self._publish(replace(m, status="pending"), events=[Event(
                m.id, m.step, "retry", new_hparams=m.hparams, message=f"resumed, max_failures={self.cfg.max_failures}")])

    def _run_async(self, executor: Executor) -> None:
        """A ready member decides when it next gets a worker, against what the others have published by then.

        With a worker per member that is as soon as its interval is back. With fewer workers (time-slicing), deciding
        at once would compare its fresh score with the older scores of the members still waiting for a worker, so
        the first members of every round would always look good and never exploit; by the time a member gets a
        worker again the others have caught up, and each is compared at the member's own step (``_view``). The
        pending decision is in the store (``decision_due``), so a killed run makes it when it resumes."""
        in_flight: set[int] = set()
        while True:
            for slot in executor.free_slots():
                runnable = self._runnable(in_flight)
                if not runnable:
                    break
                # furthest behind first, counted in ready intervals; within one, a member this worker already holds
                # in memory (reloading costs time, and an RL member would restart its games)
                member = min(runnable, key=lambda m: (m.step // self.cfg.ready_every,
                                                      not executor.cached_on(slot, m.id), m.step, m.id))
                self._decide(member.id)
                executor.submit(slot, self._job(self.members[member.id]))
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
        while True:
            if self.round is None:
                runnable = self._runnable(set())
                if not runnable:
                    return
                self.round = {"low": min(m.step for m in runnable), "attempted": [], "order": None}
            low = self.round["low"]
            for m in [m for m in self._training() if m.step == low and m.decision_due is None
                      and m.id not in self.round["attempted"]]:
                self.round["attempted"].append(m.id)
                executor.submit(0, self._job(m))
                self._record(executor.next_result())
            if self.round["order"] is None:
                order = [m.id for m in self.members if m.decision_due == low]
                decision_rng(self.cfg.seed, -1, low, "order").shuffle(order)
                self.round["order"] = order
            for member in self.round["order"]:
                self._decide(member)
            self.round = None

    def _wall(self) -> float:
        return time.perf_counter() - self.started

    def _publish(self, member: MemberRow, scores: Sequence[ScoreRow] = (), events: Sequence[Event] = ()) -> None:
        self.members[member.id] = member
        # snapshots below the slowest member that will still decide can never be copied again
        keep_from = min((m.step for m in self._training()), default=member.step)
        meta: dict[str, Any] = {"wall_seconds": self._wall()}
        if self.round is not None:
            meta["serial_round"] = self.round
        self.store.commit(member, scores, events, meta=meta, keep_from=keep_from, decided=self.decided)
        self.decided = []
        for listener in self.listeners:
            listener(member, scores, events)

    def _record(self, result: IntervalResult) -> None:
        """Publish a finished interval (θ, p, t), or what a failed one leads to (``algorithm.after_failure``)."""
        me = self.members[result.member]
        if result.error is None:
            member, scores = after_interval(me, result, self.cfg)
            self._publish(member, scores)
            return
        outcome = after_failure(me, result, self._view(me), self.space, self.cfg)
        self._publish(outcome.member, events=outcome.events)
        if outcome.stop is not None:
            raise RunFailed(outcome.stop)

    def _view(self, me: MemberRow) -> list[MemberRow]:
        """The population as ``me`` sees it at its step: a member that has trained further is represented by its
        snapshot at ``me``'s step (score, samples, hyperparameters, weights and their age as they were then), so
        what the decision compares is what a copy takes, and extra training never counts."""
        view = []
        for m in self.members:
            if m.id != me.id and m.step > me.step:
                snap = self.store.snapshot_at(m.id, me.step)
                m = (replace(m, score=None, samples=(), checkpoint=None, checksum=None) if snap is None else
                     replace(m, step=snap.step, weight_age=snap.weight_age, hparams=dict(snap.hparams),
                             score=snap.score, samples=snap.samples, checkpoint=snap.checkpoint,
                             checksum=snap.checksum))
            view.append(m)
        return view

    def _decide(self, member: int) -> None:
        """Make ``member``'s pending ready decision, if it has one. A decision that changes nothing is stored with
        the next commit (``decided``): until then nothing else has changed, so deciding again would decide the same."""
        me = self.members[member]
        if me.decision_due is None:
            return
        new, events = exploit_and_explore(me, self._view(me), self.space, self.cfg, self.cfg.seed)
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


BASELINE_METHODS = ("random_search", "grid_search")  # the methods that neither exploit nor explore


def open_experiment(
    module: str,
    config: Any,
    out: Path | str,
    method: str = "pbt",
    domain: str | None = None,
    initial_hparams: list[HParams] | None = None,
    force: bool = False,
    resume: bool = False,
) -> tuple[Store, TaskSpec]:
    """Create (or, with ``resume``, reopen) the run directory of ``module``'s task with ``config``.

    ``module`` is a task module (a dotted import path or a ``file.py`` path) that declares a ``pbt.domain.Domain``
    (or just ``make_task(config)``). A baseline method must come with a config that cannot exploit or explore
    (``baselines.baseline_config`` makes one): a run's label and what it does always agree.
    """
    if method in BASELINE_METHODS and (config.pbt.exploit != "none" or config.pbt.explore != "none"
                                       or config.pbt.explore_every_ready):
        raise ConfigError(f"a {method} run cannot exploit or explore (exploit={config.pbt.exploit!r}, explore="
                          f"{config.pbt.explore!r}); build its config with baselines.baseline_config")
    task_domain = load_domain(module)
    spec = TaskSpec(module, config)
    space = with_priors(spec.build().space, config.pbt.priors)
    store = prepare_run_dir(Path(out), domain or module, method, config, initial_hparams, space,
                            force=force, resume=resume, metric=task_domain.metric, module=module)
    return store, spec


def run_experiment(
    module: str, config: Any, out: Path | str, *, listeners: Sequence[Listener] = (), **options: Any
) -> Store:
    """Run (or, with ``resume=True``, continue) a population of ``module``'s task with ``config``; return its store.
    ``options`` are ``open_experiment``'s: ``method``, ``domain``, ``initial_hparams``, ``force``, ``resume``."""
    store, spec = open_experiment(module, config, out, **options)
    try:
        Controller(store, spec, listeners).run()
    finally:
        if store.lock is not None:  # the run is over: the store stays open for reading, the directory is free
            store.lock.release()
            store.lock = None
    return store
