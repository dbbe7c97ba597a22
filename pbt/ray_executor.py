"""Members on a Ray cluster: the same intervals, store and asynchronous controller as ``LocalExecutor``.

Each slot is a Ray actor that reserves ``cpus_per_member`` CPUs and ``gpus_per_member`` GPUs, builds the task once and
runs whole intervals, keeping recently run members in memory. The controller and its SQLite store stay with the
driver, so a killed driver resumes with ``pbt-repro resume`` like a local run. Checkpoints are files in the run
directory, which must therefore be on storage every node can reach (a shared filesystem). All checkpoint I/O goes
through ``pbt.checkpoints.write_atomic`` / ``verify_checkpoint`` and ``Task.save`` / ``Task.load`` on a path, which is
where an object-store backend (fsspec, pyarrow) would slot in: fetch to a local path before ``load``, upload after
``write_atomic``.

A worker or node that dies mid-interval surfaces as an actor error: the actor is replaced and the member's interval
is retried from its last checkpoint, counted against ``max_failures``. An interval that runs past
``interval_timeout`` has its actor killed and replaced, and counts as the member's failure; its clock starts when the
interval is submitted, so a fresh actor's start-up counts towards its first interval.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
from typing import Any

from pbt.config import PBTConfig
from pbt.executor import THREAD_ENV_VARS, TaskSpec
from pbt.interval import IntervalResult, Job, StateCache, run_interval
from pbt.space import ConfigError


class _Slot:
    """The Ray actor behind one slot (wrapped by ``ray.remote`` at run time, so Ray stays an optional import)."""

    def __init__(self, spec_bytes: bytes, threads: int, cache_size: int):
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(threads)
        # unpickled after the thread settings: the config's class imports the experiment's numerical library
        self.task = pickle.loads(spec_bytes).build()
        self.cache = StateCache(cache_size)

    def run(self, job: Job) -> IntervalResult:
        return run_interval(self.task, job, self.cache)


def check_address(address: str, timeout: float = 3.0) -> None:
    """Fail within seconds, not hang, when ``HOST:PORT`` does not answer."""
    if address in ("", "auto"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"ray_address {address!r} is not auto or HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(
            f"ray_address {address!r}: no Ray cluster answers there ({exc}); start one with "
            f"`ray start --head` or pass --ray-address auto"
        ) from None


def connect(address: str) -> bool:
    """Join (or start) Ray; return whether this process started it (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    check_address(address)
    try:
        ray.init(
            address=address or None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            ignore_reinit_error=True,
        )
    except ConnectionError as exc:
        raise ConfigError(f"ray_address {address!r}: {exc}") from None
    return True


def cluster_capacity() -> dict[str, float]:
    import ray

    resources = ray.cluster_resources()
    return {"CPU": float(resources.get("CPU", 0.0)), "GPU": float(resources.get("GPU", 0.0))}


def slots_for(cfg: PBTConfig, population: int, capacity: dict[str, float]) -> int:
    """How many members can run at once on ``capacity``; an error when not even one fits."""
    fits = [
        capacity["CPU"] // cfg.cpus_per_member if cfg.cpus_per_member else population,
        capacity["GPU"] // cfg.gpus_per_member if cfg.gpus_per_member else population,
    ]
    slots = int(min(population, *fits, cfg.workers or population))
    if slots < 1:
        raise ConfigError(
            f"the Ray cluster ({capacity['CPU']:g} CPUs, {capacity['GPU']:g} GPUs) cannot hold one "
            f"member ({cfg.cpus_per_member:g} CPUs, {cfg.gpus_per_member:g} GPUs)"
        )
    return slots


class RayExecutor:
    lockstep = False

    def __init__(self, spec: TaskSpec, population: int):
        import ray

        self.ray = ray
        cfg: PBTConfig = spec.config.pbt
        self.started_ray = connect(cfg.ray_address)
        self.spec = spec
        self.slots = slots_for(cfg, population, cluster_capacity())
        self.cache_size = -(-population // self.slots)
        self.threads = max(1, int(cfg.cpus_per_member))
        self.actor_class = ray.remote(num_cpus=cfg.cpus_per_member, num_gpus=cfg.gpus_per_member)(_Slot)
        self.actors = [self._start() for _ in range(self.slots)]
        self.interval_timeout = cfg.interval_timeout
        self.jobs: dict[int, Job] = {}  # slot -> job in flight
        self.started: dict[int, float] = {}  # slot -> when its job was submitted
        self.refs: dict[Any, int] = {}  # object ref -> slot
        self.cached: list[set[int]] = [set() for _ in range(self.slots)]

    def _start(self) -> Any:
        return self.actor_class.remote(pickle.dumps(self.spec), self.threads, self.cache_size)

    def free_slots(self) -> list[int]:
        return [i for i in range(self.slots) if i not in self.jobs]

    def cached_on(self, slot: int, member: int) -> bool:
        return member in self.cached[slot]

    def submit(self, slot: int, job: Job) -> None:
        self.jobs[slot] = job
        self.started[slot] = time.monotonic()
        self.refs[self.actors[slot].run.remote(job)] = slot

    def _replace_actor(self, slot: int) -> None:
        self.ray.kill(self.actors[slot], no_restart=True)
        self.actors[slot] = self._start()
        self.cached[slot].clear()

    def next_result(self) -> IntervalResult:
        if not self.refs:
            raise RuntimeError("next_result() called with no interval in flight")
        seconds_left = None
        if self.interval_timeout:
            seconds_left = max(0.0, min(self.started.values()) + self.interval_timeout - time.monotonic())
        done, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=seconds_left)
        if not done:  # the interval submitted first has run past interval_timeout
            slot = min(self.jobs, key=lambda s: self.started[s])
            del self.refs[next(ref for ref, s in self.refs.items() if s == slot)]
            job = self.jobs.pop(slot)
            del self.started[slot]
            self._replace_actor(slot)
            return IntervalResult(
                member=job.member, error=f"interval exceeded --interval-timeout {self.interval_timeout:g} s"
            )
        (ref,) = done
        slot = self.refs.pop(ref)
        job = self.jobs.pop(slot)
        del self.started[slot]
        try:
            result: IntervalResult = self.ray.get(ref)
        except (
            self.ray.exceptions.RayActorError,
            self.ray.exceptions.WorkerCrashedError,
            self.ray.exceptions.NodeDiedError,
            self.ray.exceptions.ObjectLostError,
        ) as exc:
            self._replace_actor(slot)
            return IntervalResult(member=job.member, error=f"Ray worker died: {type(exc).__name__}", worker_died=True)
        (self.cached[slot].add if result.error is None else self.cached[slot].discard)(result.member)
        return result

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        if self.started_ray:
            self.ray.shutdown()
