"""Where intervals run: in this process (``SerialExecutor``) or in worker processes (``LocalExecutor``).

Both take a ``TaskSpec`` (a module path and the experiment config) rather than a task object, so every worker
process builds its own task after setting its thread count, and the core never imports the experiment's framework.

No worker outlives its controller, however the controller ends (SIGKILL included): see ``_die_with_parent``.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pbt.domain import import_module, load
from pbt.interval import IntervalResult, Job, StateCache, run_interval
from pbt.task import Task

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
WORKER_READY = "ready"  # a worker's first message: its task is built, so an interval's clock may start


@dataclass(frozen=True)
class TaskSpec:
    """How to build a task anywhere: the domain of ``module`` (``pbt.domain.load``), its ``make_task(config)``.

    A spec travels to worker processes (and Ray workers) pickled. A task given as a ``file.py`` is imported under a
    name of its own (``pbt.domain.import_module``), which a fresh process does not have, so the spec carries the
    file's absolute path and imports it before it unpickles the config, whose dataclass lives in that file."""

    module: str
    config: Any

    def __post_init__(self) -> None:
        if self.module.endswith(".py"):  # a worker may start in another folder (a Ray worker does)
            object.__setattr__(self, "module", str(Path(self.module).resolve()))

    def __getstate__(self) -> dict[str, Any]:
        return {"module": self.module, "config": pickle.dumps(self.config)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["module"].endswith(".py"):
            import_module(state["module"])
        object.__setattr__(self, "module", state["module"])
        object.__setattr__(self, "config", pickle.loads(state["config"]))

    def build(self) -> Task:
        return load(self.module).make_task(self.config)

    def prepare(self) -> None:
        """Run the domain's optional one-time ``prepare(config)`` (decode data, train an auxiliary model) in this
        process, before any worker starts, so workers do not race to do it inside their first interval."""
        prepare = load(self.module).prepare
        if prepare is not None:
            prepare(self.config)


def concurrency(cfg: Any, population: int) -> int:
    """How many members a serial or local executor trains at once (a Ray executor asks its cluster, ``slots_for``)."""
    return 1 if cfg.executor == "serial" else max(1, min(cfg.workers or cpu_count(), population))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Executor(Protocol):
    """Where intervals run: ``slots`` of them at a time. The controller hands a job to a free slot and takes results
    back as they finish. A ``lockstep`` executor (serial) is driven in rounds, every member level, which is what
    makes it deterministic; the others are driven asynchronously."""

    slots: int
    lockstep: bool

    def free_slots(self) -> list[int]: ...
    def cached_on(self, slot: int, member: int) -> bool: ...
    def submit(self, slot: int, job: Job) -> None: ...
    def next_result(self) -> IntervalResult: ...
    def close(self) -> None: ...


class SerialExecutor:
    """Runs intervals one at a time in this process. Deterministic: the toy example and the tests use it."""

    slots = 1
    lockstep = True

    def __init__(self, spec: TaskSpec, cache_size: int):
        self.task = spec.build()
        self.cache = StateCache(cache_size)
        self.job: Job | None = None

    def free_slots(self) -> list[int]:
        return [] if self.job is not None else [0]

    def cached_on(self, slot: int, member: int) -> bool:
        return member in self.cache.states

    def submit(self, slot: int, job: Job) -> None:
        self.job = job

    def next_result(self) -> IntervalResult:
        job, self.job = self.job, None
        if job is None:
            raise RuntimeError("next_result() called with no interval submitted")
        return run_interval(self.task, job, self.cache)

    def close(self) -> None:
        self.cache.states.clear()


def _die_with_parent(parent_pid: int) -> None:
    """Make sure this worker ends when its controller (process ``parent_pid``, recorded before spawning) does,
    SIGKILL included, so that no worker outlives its run, finishes an interval nobody will read and writes its
    checkpoint, or prints a BrokenPipeError.

    A spawned worker runs the interpreter's start-up, re-imports the controller's main module (seconds, if that
    imports torch) and unpickles its arguments before any of this module's code runs, and the controller may die in
    that window. So, first thing in the worker: ask Linux to SIGKILL it when its parent dies (PR_SET_PDEATHSIG), then
    check that the parent is still the controller: if the controller died before that request, the worker has been
    handed to another parent already, and it leaves at once. A watchdog thread also waits on the pipe that
    multiprocessing keeps open from the parent (its EOF is the parent's death) and ends the worker when it closes:
    the fallback where prctl is not available."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    parent = mp.parent_process()
    if os.getppid() != parent_pid:  # the controller died before the request above
        os._exit(0)
    if parent is not None and parent.sentinel is not None:

        def watch() -> None:
            mpc.wait([parent.sentinel])  # readable only at EOF: the controller is gone
            os._exit(0)

        threading.Thread(target=watch, name="pbt-parent-watchdog", daemon=True).start()


def _worker_main(conn: mpc.Connection, spec_bytes: bytes, threads: int, cache_size: int, parent_pid: int) -> None:
    _die_with_parent(parent_pid)  # before anything else: importing the task may take seconds
    for var in THREAD_ENV_VARS:  # before the task imports its numerical library
        os.environ[var] = str(threads)
    # spawn re-imports the parent's main module first; if that imported torch, it read its thread count too early
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the controller's to handle
    # Unpickled only now: the config's class lives in the experiment module, which imports torch, and torch reads
    # OMP_NUM_THREADS once, at import. Passed as a plain argument, it was unpickled before the line above ran.
    spec: TaskSpec = pickle.loads(spec_bytes)
    task = spec.build()
    cache = StateCache(cache_size)
    try:
        conn.send(WORKER_READY)
    except OSError:
        os._exit(0)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        result = run_interval(task, job, cache)
        try:
            conn.send(result)
        except OSError:  # BrokenPipeError, ConnectionResetError: the controller is gone, and nobody reads this
            os._exit(0)


class _Worker:
    def __init__(self, ctx: Any, spec: TaskSpec, threads: int, cache_size: int):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, daemon=True, args=(child, pickle.dumps(spec), threads, cache_size, os.getpid())
        )
        self.process.start()
        child.close()
        self.job: Job | None = None
        self.cached: set[int] = set()
        self.ready = False  # it has built its task (``WORKER_READY``)
        self.started: float | None = None  # when its interval's clock started: submitted to a ready worker


class LocalExecutor:
    """``workers`` processes on this machine, each running whole intervals. A worker that dies is replaced and its
    interval reported as failed, so the run never hangs on it; so is one whose interval runs past
    ``interval_timeout`` seconds (0: no limit), counted from when the worker is ready (its start-up, importing the
    task's framework, does not count)."""

    lockstep = False

    def __init__(self, spec: TaskSpec, workers: int, cache_size: int, interval_timeout: float = 0.0):
        self.spec = spec
        self.interval_timeout = interval_timeout
        self.ctx = mp.get_context("spawn")  # fork is unsafe once a numerical library has started threads
        self.threads = max(1, cpu_count() // workers)
        self.cache_size = cache_size
        self.workers = [self._start() for _ in range(workers)]
        self.slots = workers

    def _start(self) -> _Worker:
        return _Worker(self.ctx, self.spec, self.threads, self.cache_size)

    def _restart(self, worker: _Worker) -> _Worker:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        fresh = self._start()
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def free_slots(self) -> list[int]:
        return [i for i, w in enumerate(self.workers) if w.job is None]

    def cached_on(self, slot: int, member: int) -> bool:
        return member in self.workers[slot].cached

    def submit(self, slot: int, job: Job) -> None:
        worker = self.workers[slot]
        if not worker.process.is_alive():  # died between intervals
            worker = self._restart(worker)
        worker.job = job
        worker.started = time.monotonic() if worker.ready else None
        worker.conn.send(job)

    def _seconds_left(self, busy: list[_Worker]) -> float | None:
        """Until the earliest running interval's deadline; None when there is none (no limit, or no clock started)."""
        starts = [w.started for w in busy if w.started is not None]
        if not self.interval_timeout or not starts:
            return None
        return max(0.0, min(starts) + self.interval_timeout - time.monotonic())

    def _stop_overdue(self, busy: list[_Worker]) -> IntervalResult:
        """Stop the worker whose interval has run past ``interval_timeout`` (the one started first), and report the
        interval as the member's failure."""
        worker = min((w for w in busy if w.started is not None), key=lambda w: w.started or 0.0)
        job = worker.job
        assert job is not None
        self._restart(worker)
        return IntervalResult(
            member=job.member, error=f"interval exceeded --interval-timeout {self.interval_timeout:g} s"
        )

    def next_result(self) -> IntervalResult:
        while True:
            busy = {w.conn: w for w in self.workers if w.job is not None}
            if not busy:
                raise RuntimeError("next_result() called with no interval in flight")
            sentinels = {w.process.sentinel: w for w in busy.values()}
            ready = mpc.wait(list(busy) + list(sentinels), timeout=self._seconds_left(list(busy.values())))
            if not ready:  # no result and no death before the earliest deadline
                return self._stop_overdue(list(busy.values()))
            dead = [sentinels[obj] for obj in ready if obj in sentinels]
            for obj in ready:  # results first: a worker may have sent its result and then exited
                if obj not in busy:
                    continue
                worker = busy[obj]
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    dead.append(worker)
                    continue
                if message == WORKER_READY:  # its interval's clock starts now
                    worker.ready, worker.started = True, time.monotonic()
                    continue
                result: IntervalResult = message
                worker.job = None
                if result.error is None:
                    worker.cached.add(result.member)
                else:
                    worker.cached.discard(result.member)
                return result
            if dead:
                return self._replace_dead(dead[0])

    def _replace_dead(self, worker: _Worker) -> IntervalResult:
        job = worker.job
        assert job is not None
        worker.process.join(timeout=5.0)
        code = worker.process.exitcode
        self._restart(worker)
        return IntervalResult(member=job.member, error=f"worker process died (exit code {code})", worker_died=True)

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                worker.conn.send(None)
        for worker in self.workers:
            worker.process.join(timeout=5.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()


def make_executor(spec: TaskSpec, population: int) -> Executor:
    """The serial or local executor ``spec``'s config asks for, sized for ``population`` members (a Ray executor is
    ``pbt.ray_executor``'s)."""
    cfg = spec.config.pbt
    if cfg.executor == "serial":
        return SerialExecutor(spec, cache_size=population)
    workers = concurrency(cfg, population)
    return LocalExecutor(
        spec, workers=workers, cache_size=math.ceil(population / workers), interval_timeout=cfg.interval_timeout
    )
