"""One interval of one member, as a worker runs it: ``θ ← step(θ|h); p ← eval(θ)`` of Algorithm 1.

The controller sends a ``Job``; ``run_interval`` trains the member until it is ready (``ready_every`` steps since it
was last ready) or its budget ends, evaluating every ``eval_every`` steps, writes its checkpoint and returns an
``IntervalResult``, which the controller hands to ``pbt.algorithm`` to decide what follows. A failure comes back as a
result, never as an exception, and says whether retrying can help. ``StateCache`` keeps a worker's member states in
memory between intervals.
"""

from __future__ import annotations

import errno
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pbt.checkpoints import CorruptCheckpoint, verify_checkpoint, write_atomic
from pbt.config import PBTConfig
from pbt.rows import MemberRow
from pbt.space import HParams
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


def next_job(m: MemberRow, cfg: PBTConfig, checkpoint_dir: Path) -> Job:
    """Member ``m``'s next interval: until it is next ready, or to the end of its budget."""
    steps = min(cfg.ready_every - m.steps_since_ready, cfg.budget_steps - m.step)
    return Job(
        member=m.id,
        seed=m.seed,
        hparams=m.hparams,
        start_step=m.step,
        steps=steps,
        eval_every=cfg.interval_eval_every,
        checkpoint_dir=str(checkpoint_dir),
        checkpoint=m.checkpoint,
        checksum=m.checksum,
    )


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
    except (Exception, SystemExit) as exc:
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
