"""A run directory: creating one (atomically, with its provenance: config, seed, git commit, machine), reopening
it to resume, replacing it with ``force``, and the one-owner lock around all of it. The controller trains what this
hands it; nothing here trains.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from pbt.config import EXECUTION_FIELDS, PBTConfig, from_dict
from pbt.executor import cpu_count
from pbt.space import ConfigError, HParams, check_initial_hparams, describe, sample
from pbt.store import LOCK_NAME, MemberRow, RunLock, Store


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


def _stored_config(config: Any, stored: Any) -> Any:
    """A stored run's config as ``_config_dict`` gives it for ``config``'s class: a setting added after the run was
    made reads as its default (a run made before ``transfer`` existed copied both), so the run still resumes."""
    try:
        return _config_dict(from_dict(type(config), stored))
    except (ConfigError, TypeError):  # not this class's config at all: compared as it is, and refused
        return stored


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} != {b!r}"]


def run_differences(meta: dict[str, Any], domain: str, method: str, config: Any,
                    schedule: list[dict[str, Any]] | None = None) -> list[str]:
    """What makes a stored run (its metadata) another run than ``method`` on ``domain`` with ``config`` (and a
    replay's ``schedule``): each setting that differs, as ``name: stored != wanted``. Execution settings (workers,
    ...) are left out: a resume may change them without changing what is computed."""
    wanted = _identity(domain, method, config, schedule)
    stored = {k: meta.get(k) for k in wanted} | {"config": _stored_config(config, meta.get("config"))}
    return [d for d in _differences(stored, wanted)
            if d.split(":")[0].removeprefix("config.pbt.") not in EXECUTION_FIELDS]


def _identity(domain: str, method: str, config: Any, schedule: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The metadata that says which run a store holds."""
    wanted = {"domain": domain, "method": method, "config": _config_dict(config)}
    if schedule is not None:  # a replay's schedule is part of what it computes: a resume must follow the same one
        wanted["schedule"] = schedule
    return wanted


def prepare_run_dir(
    out: Path, domain: str, method: str, config: Any, initial_hparams: list[HParams] | None, space: dict,
    force: bool = False, resume: bool = False, metric: str = "score", module: str | None = None,
    schedule: list[dict[str, Any]] | None = None, extra_meta: dict[str, Any] | None = None,
) -> Store:
    """Create a new run directory, or reopen ``out`` when ``resume`` is set and it holds the same run; the store
    returned owns the directory (``store.lock``) until it is closed.

    Refuses a non-empty directory unless ``resume`` (the same run) or ``force`` (which replaces a run directory, and
    nothing else) is given. A directory whose run never trained a step is started over, so a run that failed at
    start-up (wrong data path, say) can be run again with corrected settings. Creation is atomic: the run is built
    in a hidden folder beside ``out`` and renamed into place, so a kill at any moment leaves nothing or a whole run.
    ``schedule`` (a replay's, ``Schedule.to_meta``) is recorded in the metadata, where the controller reads it, and
    must be the same to resume; ``extra_meta`` is recorded at creation and not compared.
    """
    pbt: PBTConfig = config.pbt
    wanted = _identity(domain, method, config, schedule)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a run directory; choose another --out")
    if initial_hparams is not None:  # before anything is created: a member must be able to start from them
        check_initial_hparams(initial_hparams, space)
    if initial_hparams is not None and len(initial_hparams) != pbt.population:
        raise ConfigError(f"population is {pbt.population} but {len(initial_hparams)} initial configurations given")
    replace_old = False
    if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
        lock = RunLock(out)  # one owner at a time: refused within the lock's wait while another process owns it
        try:
            store = Store.open_existing(out) if Store.exists(out) else None
        except BaseException:
            lock.release()
            raise
        have = store.meta() if store is not None else {}
        untrained = store is not None and (not have.get("domain") or not store.trained_any())
        if store is not None and resume and not untrained:
            diff = run_differences(have, domain, method, config, schedule)
            if diff:
                store.close()
                lock.release()
                raise ConfigError(f"{out} belongs to a different run ({'; '.join(diff[:3])}); choose another --out")
            store.lock = lock
            return store
        if store is not None:
            store.close()
        if not (force or untrained):
            what = "holds a run" if store is not None else "is not empty"
            if store is not None:
                lock.release()
            else:
                lock.discard()  # not a run: leave no lock file in it
            raise ConfigError(f"{out} {what}; use --resume to continue it or --force to replace it")
        if store is None:  # --force replaces runs only: never a folder of other files
            found = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
            lock.discard()
            raise ConfigError(f"{out} holds files that are not a run ({', '.join(found[:3])}); --force only "
                              "replaces a run directory, so remove them yourself or choose another --out")
        replace_old = True
    rng = random.Random(f"{pbt.seed}:init")  # shared by PBT and random search: same seed, same initial population
    hparams = initial_hparams or [sample(space, rng) for _ in range(pbt.population)]
    # the module (so a resume finds the task again) and the priors (so figures need not build the task) go with it
    meta = dict(**wanted, **(extra_meta or {}), metric=metric, module=module or domain,
                space={k: describe(p) for k, p in space.items()}, initial_hparams=hparams, seed=pbt.seed,
                git_commit=git_commit(), machine=machine(),
                started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), wall_seconds=0.0, status="running")
    members = [MemberRow(id=i, seed=pbt.seed + i, hparams=dict(h)) for i, h in enumerate(hparams)]
    built, new_lock = _build_run(out, members, meta)
    if replace_old:
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)  # the old run, lock and all, leaves; the new one, already locked by us, takes its name
        os.rename(built, out)
        lock.release()  # a process waiting on the old file now gets a lock that does not count (RunLock retries)
        shutil.rmtree(old, ignore_errors=True)
    else:
        try:
            os.rename(built, out)  # replaces an empty directory; fails if another process got there first
        except OSError as exc:
            new_lock.release()
            shutil.rmtree(built, ignore_errors=True)
            raise ConfigError(f"{out} was created by another process meanwhile; choose another --out") from exc
    new_lock.moved(out)
    store = Store(out)
    store.lock = new_lock
    return store


def _build_run(out: Path, members: list[MemberRow], meta: dict[str, Any]) -> tuple[Path, RunLock]:
    """A complete new run in a hidden folder beside ``out``, and its lock, taken before anything is written, so the
    run is owned from the moment it is renamed into place (left-overs of creations and replacements killed earlier
    are removed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*out.parent.glob(f".{out.name}.creating-*"), *out.parent.glob(f".{out.name}.old-*")]:
        pid = stale.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    built = out.with_name(f".{out.name}.creating-{os.getpid()}")
    shutil.rmtree(built, ignore_errors=True)
    try:
        built.mkdir()
        lock = RunLock(built)
    except PermissionError as exc:
        raise ConfigError(f"cannot create a run in {out.parent}: {exc}") from exc
    try:
        store = Store(built)
        try:
            store.initialise(members, meta)
        finally:
            store.close()
    except BaseException as exc:
        lock.release()
        if isinstance(exc, (PermissionError, sqlite3.OperationalError)):
            raise ConfigError(f"cannot create a run in {out.parent}: {exc}") from exc
        raise
    return built, lock
