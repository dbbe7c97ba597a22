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
from pbt.lock import LOCK_NAME, LockLost, RunBusy, RunLock, owner_identity, recorded_owner_alive
from pbt.rows import MemberRow, RunStatus, run_mode
from pbt.space import ConfigError, HParams, check_initial_hparams, describe, sample
from pbt.store import DB_NAME, NotARunStore, StoreReader
from pbt.store_writer import Store


def git_commit() -> str:
    """The commit of the code that runs, with ``+dirty`` when the tree has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, Any]:
    return {
        "node": platform.node(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": cpu_count(),
        "python": platform.python_version(),
    }


def _config_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))  # tuples become lists, as they are stored


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} != {b!r}"]


def run_differences(
    meta: dict[str, Any], domain: str, method: str, config: Any, schedule: list[dict[str, Any]] | None = None
) -> list[str]:
    """What makes a stored run (its metadata) another run than ``method`` on ``domain`` with ``config`` (and a
    replay's ``schedule``): each setting that differs, as ``name: stored != wanted``. Execution settings (workers,
    ...) are left out: a resume may change them without changing what is computed."""
    wanted = _identity(domain, method, config, schedule)
    stored = {k: meta.get(k) for k in wanted}
    stored["config"] = _as_read_now(type(config), stored["config"])
    for side in (stored, wanted):  # the mode each side reads as (run_mode): a store from before the field maximised
        if isinstance(side["config"], dict) and isinstance(side["config"].get("pbt"), dict):
            side["config"] = {**side["config"], "pbt": {**side["config"]["pbt"], "mode": run_mode(side["config"])}}
    return [
        d for d in _differences(stored, wanted) if d.split(":")[0].removeprefix("config.pbt.") not in EXECUTION_FIELDS
    ]


def _as_read_now(cls: type, stored: Any) -> Any:
    """A stored config as this code reads it: a setting added since the run was stored takes its default, which by
    the project's rule (the golden runs pin it) computes what every run computed before the setting existed. A stored
    config this code cannot read is compared as it is, so its differences are named."""
    try:
        return _config_dict(from_dict(cls, stored))
    except (ConfigError, TypeError):
        return stored


def _identity(domain: str, method: str, config: Any, schedule: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The metadata that says which run a store holds."""
    wanted = {"domain": domain, "method": method, "config": _config_dict(config)}
    if schedule is not None:  # a replay's schedule is part of what it computes: a resume must follow the same one
        wanted["schedule"] = schedule
    return wanted


class RunDir:
    """A run directory's whole life, with its one owner: ``RunDir.open`` creates it (atomically), reopens it to
    resume (lock, integrity check, config check) or replaces it (``force``), and hands out its ``store``; ``close``
    gives it up. Nothing else takes or releases a run's lock. Reading a run needs none of this:
    ``pbt.store.StoreReader`` (and ``pbt.results.Results`` on it) never writes.

    Ownership is checked twice: the ``flock`` on ``pbt.lock`` (dropped by the kernel when the owner dies), and the
    owner's PID and start time in the store, so deleting the lock file lets no second owner in while the first is
    alive; the first notices at its next commit that its lock file is gone or replaced and stops."""

    def __init__(self, path: Path, lock: RunLock, owner_recorded: bool):
        self.path, self.lock, self.owner_recorded = path, lock, owner_recorded
        self.store = Store(path, guard=self._before_write)

    def _before_write(self) -> None:
        """Before every transaction: stop unless the lock is still ours; before the first, record this process as
        the owner (only then: reopening a finished run to read it leaves its store byte for byte as it was)."""
        self.lock.verify()
        if not self.owner_recorded:
            self.owner_recorded = True
            self.store.set_meta(owner=owner_identity(os.getpid()))

    def close(self) -> None:
        """Give up the directory: record that no process owns it, close the store, and release the lock last, once
        nothing more is written. (Recording fails only where the run already stopped for a reason of its own.)"""
        try:
            if self.owner_recorded:
                self.store.set_meta(owner=None)
        except (sqlite3.Error, OSError, LockLost):
            pass
        finally:
            self.store.close()
            self.lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def open(
        cls,
        out: Path,
        domain: str,
        method: str,
        config: Any,
        initial_hparams: list[HParams] | None,
        space: dict,
        force: bool = False,
        resume: bool = False,
        metric: str = "score",
        module: str | None = None,
        schedule: list[dict[str, Any]] | None = None,
        extra_meta: dict[str, Any] | None = None,
    ) -> RunDir:
        """Create a new run directory, or reopen ``out`` when ``resume`` is set and it holds the same run.

        Refuses a non-empty directory unless ``resume`` (the same run) or ``force`` (which replaces a run directory,
        and nothing else) is given. A directory whose run never trained a step is started over, so a run that failed
        at start-up (wrong data path, say) can be run again with corrected settings. Creation is atomic: the run is
        built in a hidden folder beside ``out`` and renamed into place, so a kill at any moment leaves nothing or a
        whole run. ``schedule`` (a replay's, ``Schedule.to_meta``) is recorded in the metadata, where the controller
        reads it, and must be the same to resume; ``extra_meta`` is recorded at creation and not compared.
        """
        pbt: PBTConfig = config.pbt
        if out.is_symlink() and out.is_dir():  # --force replaces the run the link points to, never the link
            out = Path(os.path.realpath(out))
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out} is a file, not a run directory; choose another ⟨out⟩", path=out, options=["out"])
        if initial_hparams is not None:  # before anything is created: a member must be able to start from them
            check_initial_hparams(initial_hparams, space)
        if initial_hparams is not None and len(initial_hparams) != pbt.population:
            raise ConfigError(f"population is {pbt.population} but {len(initial_hparams)} initial configurations given")
        for parent in Path(os.path.abspath(out)).parents:
            if (parent / DB_NAME).is_file():
                raise ConfigError(
                    f"{out} is inside the run directory {parent}; choose an ⟨out⟩ outside it", path=out, options=["out"]
                )
        lock = None
        if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
            lock = RunLock(out)  # one owner at a time: refused within the lock's wait while another process owns it
            try:
                found, stored = _existing_run(out, check=resume)  # the store is read once
                if found in ("trained", "untrained"):
                    _refuse_a_live_owner(out, stored)
                if found in ("trained", "damaged") and resume:
                    return cls._resume(out, lock, domain, method, config, schedule, stored)
                if found == "other" or (found != "untrained" and not force):
                    what = "holds a run" if found != "other" else "is not empty"
                    if found == "other" and force:
                        names = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
                        raise ConfigError(
                            f"{out} holds files that are not a run ({', '.join(names[:3])}); ⟨force⟩ "
                            "only replaces a run directory, so remove them yourself or choose another "
                            "⟨out⟩",
                            path=out,
                            options=["force", "out"],
                        )
                    raise ConfigError(
                        f"{out} {what}; use ⟨resume⟩ to continue it or ⟨force⟩ to replace it",
                        path=out,
                        options=["resume", "force"],
                    )
            except BaseException:
                lock.discard()  # refused: a lock file this made (a folder that is not a run, say) goes with it
                raise
        rng = random.Random(f"{pbt.seed}:init")  # shared by PBT and random search: same seed, same initial population
        hparams = initial_hparams or [sample(space, rng) for _ in range(pbt.population)]
        # the module (so a resume finds the task again) and the priors (so figures need not build the task) go with it
        meta = dict(
            **_identity(domain, method, config, schedule),
            **(extra_meta or {}),
            metric=metric,
            module=module or domain,
            space={k: describe(p) for k, p in space.items()},
            initial_hparams=hparams,
            seed=pbt.seed,
            git_commit=git_commit(),
            machine=machine(),
            started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            wall_seconds=0.0,
            status=RunStatus.RUNNING,
            owner=owner_identity(os.getpid()),
        )
        members = [MemberRow(id=i, seed=pbt.seed + i, hparams=dict(h)) for i, h in enumerate(hparams)]
        built, new_lock = _build_run(out, members, meta)
        if lock is not None:  # an old run (or one that never trained) is replaced
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
                raise ConfigError(
                    f"{out} was created by another process meanwhile; choose another ⟨out⟩", path=out, options=["out"]
                ) from exc
        new_lock.moved(out)
        return cls(out, new_lock, owner_recorded=True)

    @classmethod
    def _resume(
        cls,
        out: Path,
        lock: RunLock,
        domain: str,
        method: str,
        config: Any,
        schedule: list[dict[str, Any]] | None,
        stored: dict[str, Any] | None,
    ) -> RunDir:
        """Reopen a run that trained, to continue it: same run (``stored``: its metadata, None when its store is
        damaged), undamaged, and no other owner alive."""
        if stored is None:  # read again only to raise what is damaged (``repro.cli`` words it)
            with StoreReader(out) as reader:
                reader.check_integrity()
                stored = reader.meta()
        diff = run_differences(stored, domain, method, config, schedule)
        if diff:
            raise ConfigError(
                f"{out} belongs to a different run ({'; '.join(diff[:3])}); choose another ⟨out⟩",
                path=out,
                options=["out"],
            )
        return cls(out, lock, owner_recorded=False)


def _refuse_a_live_owner(out: Path, stored: dict[str, Any] | None) -> None:
    """Raise ``RunBusy`` when the process recorded as the run's owner (in ``stored``, the run's metadata) is alive:
    its lock file was deleted (or replaced), so the lock alone no longer keeps a second owner out."""
    owner = (stored or {}).get("owner") or {}
    if owner.get("pid") != os.getpid() and recorded_owner_alive(owner):
        raise RunBusy(
            f"{out} is in use by process {owner['pid']} (it owns this run, though its {LOCK_NAME} was "
            "deleted or replaced); wait for it to end or stop it, then try again",
            path=out,
        )


def _existing_run(out: Path, check: bool) -> tuple[str, dict[str, Any] | None]:
    """What ``out`` holds, and its run's metadata (None unless a readable run): ``trained`` (a run that trained),
    ``untrained`` (a run that never trained a step, or a store whose creation never finished), ``damaged`` (a store
    that cannot be read, or with ``check``, a trained one that fails SQLite's integrity check) or ``other``."""
    if not Store.exists(out):
        return "other", None
    try:
        with StoreReader(out) as reader:
            trained = reader.trained_any()
            if check and trained:  # a run that never trained is started over, damaged or not
                reader.check_integrity()
            return ("trained" if trained else "untrained"), reader.meta()
    except NotARunStore:
        return ("untrained" if (out / DB_NAME).stat().st_size == 0 else "other"), None
    except sqlite3.DatabaseError:
        return "damaged", None


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
        raise ConfigError(f"cannot create a run in {out.parent}: {exc}", path=out.parent) from exc
    try:
        store = Store(built)
        try:
            store.initialise(members, meta)
        finally:
            store.close()
    except BaseException as exc:
        lock.release()
        if isinstance(exc, (PermissionError, sqlite3.OperationalError)):
            raise ConfigError(f"cannot create a run in {out.parent}: {exc}", path=out.parent) from exc
        raise
    return built, lock
