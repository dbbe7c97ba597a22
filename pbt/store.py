"""The population store: one SQLite database per run (WAL mode), plus checkpoint files beside it.

It holds the run's metadata (config, seed, git commit, machine, times), every member's current hyperparameters,
step, weight age, score and checkpoint, the full score history, every exploit / explore / failure event, and each
completed interval's hyperparameters and score change (what PB2 learns from). Lineages and hyperparameter schedules are
rebuilt from the events afterwards. Only the controller writes; anyone may read.

A member's *step* counts the training its slot has done (compute); its *weight age* counts the training the weights it
holds have received, through every copy. They differ after a copy, and the age never exceeds the step (a copy takes
the donor's weights as they were at the copier's step, see ``snapshots``). Each member's published states are kept as
*snapshots* (with their checkpoints) while a member that is behind may still copy them.

Checkpoints are written atomically (temp file, fsync, rename) and their SHA-256 is recorded in the store in the same
transaction that publishes the member's new step, so a run killed at any moment resumes from a consistent state.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from pbt.space import ConfigError, HParams

DB_NAME = "pbt.sqlite"
CKPT_DIR = "checkpoints"
LOCK_NAME = "pbt.lock"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS member (
    id INTEGER PRIMARY KEY, seed INTEGER NOT NULL, hparams TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0, steps_since_ready INTEGER NOT NULL DEFAULT 0,
    score REAL, samples TEXT NOT NULL DEFAULT '[]',
    checkpoint TEXT, checksum TEXT,
    status TEXT NOT NULL DEFAULT 'pending', failures INTEGER NOT NULL DEFAULT 0, error TEXT,
    weight_age INTEGER, decision_due INTEGER
);
CREATE TABLE IF NOT EXISTS score (
    member INTEGER NOT NULL, step INTEGER NOT NULL, score REAL NOT NULL,
    metrics TEXT NOT NULL, time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS event (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, member INTEGER NOT NULL, step INTEGER NOT NULL,
    kind TEXT NOT NULL, donor INTEGER, donor_step INTEGER, old_hparams TEXT, new_hparams TEXT, ops TEXT,
    score REAL, donor_score REAL, message TEXT, weight_age INTEGER
);
CREATE TABLE IF NOT EXISTS snapshot (
    member INTEGER NOT NULL, step INTEGER NOT NULL, weight_age INTEGER NOT NULL, hparams TEXT NOT NULL,
    score REAL, samples TEXT NOT NULL, checkpoint TEXT NOT NULL, checksum TEXT NOT NULL,
    PRIMARY KEY (member, step)
);
CREATE TABLE IF NOT EXISTS ready_interval (
    member INTEGER NOT NULL, start_step INTEGER NOT NULL, end_step INTEGER NOT NULL, hparams TEXT NOT NULL,
    start_score REAL NOT NULL, end_score REAL NOT NULL, PRIMARY KEY (member, start_step)
);
CREATE INDEX IF NOT EXISTS score_member ON score (member, step);
CREATE INDEX IF NOT EXISTS ready_interval_start ON ready_interval (start_step);
"""
# Columns added after the first layout: a store written before them gets them on open (NULL: unknown, read as the
# member's step, which is what the weights had then at most once copies were resolved at the copier's step).
MIGRATIONS = (("member", "weight_age", "INTEGER"), ("event", "weight_age", "INTEGER"),
              ("member", "decision_due", "INTEGER"))
MEMBER_COLUMNS = ("id", "seed", "hparams", "step", "steps_since_ready", "score", "samples", "checkpoint", "checksum",
                  "status", "failures", "error", "weight_age", "decision_due")
EVENT_COLUMNS = ("id", "time", "member", "step", "kind", "donor", "donor_step", "old_hparams", "new_hparams", "ops",
                 "score", "donor_score", "message", "weight_age")
MEMBER_INSERT = (f"INSERT OR REPLACE INTO member ({', '.join(MEMBER_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(MEMBER_COLUMNS))})")


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file is missing, truncated or does not match its recorded checksum."""


class StoreDamaged(sqlite3.DatabaseError):
    """The store's files were changed from outside while the run used them (its WAL file deleted or replaced)."""


class RunBusy(ConfigError):
    """Another process owns the run directory."""


class LockLost(ConfigError):
    """The owner's lock file was deleted or replaced while it trained: it stops, since another process may own the
    run now."""


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux), or None when it is not running or unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_identity(pid: int) -> dict[str, Any]:
    """A process as the store records its owner: PID and start time (so a reused PID is not taken for it)."""
    return {"pid": pid, "start": process_start(pid)}


def recorded_owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process recorded as a run's owner (``owner_identity``) is still running."""
    pid = owner.get("pid")
    return isinstance(pid, int) and owner.get("start") is not None and process_start(pid) == owner.get("start")


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/pbt.lock``, held by the one process that trains, resumes or deletes a run,
    for as long as it does. The kernel drops it when that process dies (kill -9 included), so a dead owner never
    blocks a resume. The file holds the owner's PID, for messages; readers (status, compare) never take it.

    A lock counts only on the file that is at ``RUN_DIR/pbt.lock`` once it is held: ``--force`` (or restarting a run
    that never trained) moves the old run, lock file and all, out of the way, and a process that opened the old file
    just before would otherwise own a run directory that is no longer there while the new run has another owner."""

    def __init__(self, run_dir: Path | str, wait: float = 1.0):
        self.path = Path(run_dir) / LOCK_NAME
        self.created = False  # whether this lock made the file (so a folder that is not a run keeps nothing of ours)
        deadline = time.monotonic() + wait  # a reader's momentary shared lock (RunLock.owner) is waited out
        while True:
            fd = self._open()
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    if self._is_current(fd):
                        break
                except BlockingIOError:
                    pass
                os.close(fd)  # held by another process, or a file that has left the run directory: try again
            if time.monotonic() >= deadline:
                if fd < 0 and not self.path.parent.is_dir():
                    raise ConfigError(f"{run_dir} was moved or deleted by another process; try again", path=run_dir)
                raise RunBusy(f"{run_dir} is in use by process {self._pid() or '?'} (it owns this run); wait for it "
                              "to end or stop it, then try again", path=run_dir)
            time.sleep(0.05)
        self.fd = fd
        held = os.fstat(fd)
        self.file_id = (held.st_dev, held.st_ino)  # what verify compares the path with (one stat per transaction)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def _open(self) -> int:
        """A descriptor of the lock file (created if missing), or -1 while the run directory is missing (between
        the two renames of a replacement)."""
        self.created = False
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                self.created = True
                return fd
            except FileExistsError:
                return os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return -1
        except PermissionError as exc:
            raise ConfigError(f"{self.path.parent} is not writable ({exc.strerror})", path=self.path.parent) from exc

    def _is_current(self, fd: int) -> bool:
        """Whether the file locked through ``fd`` is still the one at ``self.path`` (not moved away or deleted)."""
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)

    def verify(self) -> None:
        """Raise ``LockLost`` unless the file at ``RUN_DIR/pbt.lock`` is still the one this process holds: deleted
        or replaced, it no longer keeps a second owner out, so this one stops (at its next commit)."""
        try:
            here = os.stat(self.path)
            current = self.fd >= 0 and (here.st_dev, here.st_ino) == self.file_id
        except FileNotFoundError:
            current = False
        if not current:
            raise LockLost(f"{self.path} was deleted or replaced while this process owned the run, so it stopped; "
                           "what was committed is kept (`pbt-repro resume DIR` continues it)", path=self.path.parent)

    def moved(self, run_dir: Path | str) -> None:
        """The locked directory was renamed to ``run_dir`` (a new run put into place): the lock goes with it."""
        self.path = Path(run_dir) / LOCK_NAME

    def discard(self) -> None:
        """Release, removing the lock file if this lock created it: a folder that turned out not to be a run is left
        as it was. Safe while others wait on the file: a lock on a file no longer at its path does not count."""
        if self.fd >= 0 and self.created:
            self.path.unlink(missing_ok=True)
        self.release()

    def _pid(self) -> int | None:
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = -1

    @staticmethod
    def owner(run_dir: Path | str) -> int | None:
        """The PID of the live process that owns ``run_dir``, or None when nobody does."""
        path = Path(run_dir) / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None  # nobody holds it exclusively
        except BlockingIOError:
            try:
                return int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return -1
        finally:
            os.close(fd)


class MemberStatus(StrEnum):
    """Where a member stands: still training, done with its budget, failed (it stopped the run) or dropped."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    DROPPED = "dropped"


# members whose latest score counts and who may be copied (dropped and failed ones neither count nor are copied)
COUNTED = (MemberStatus.PENDING, MemberStatus.DONE)


class EventKind(StrEnum):
    """What an event records: a copy of weights and hyperparameters (``exploit``), of hyperparameters only
    (``exploit_hparams``), an explore, a replay's schedule change, a failure and what followed it (``replace``,
    ``drop``, ``retry``)."""

    EXPLOIT = "exploit"
    EXPLOIT_HPARAMS = "exploit_hparams"
    EXPLORE = "explore"
    SCHEDULE = "schedule"
    FAILURE = "failure"
    REPLACE = "replace"
    DROP = "drop"
    RETRY = "retry"


class RunStatus(StrEnum):
    """A run's stored status (``StoreReader.state`` tells a killed ``running`` run from a live one)."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class MemberRow:
    id: int
    seed: int
    hparams: HParams
    step: int = 0
    steps_since_ready: int = 0
    score: float | None = None
    samples: tuple[float, ...] = ()
    checkpoint: str | None = None
    checksum: str | None = None
    status: str = MemberStatus.PENDING
    failures: int = 0
    error: str | None = None
    weight_age: int = 0  # training steps the weights it holds received, through every copy (<= step)
    # set when an interval made the member ready, in the same transaction, and cleared with its decision: a ready
    # decision survives a kill. Its value is the step the interval started at (the serial executor's round).
    decision_due: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """A member's published state at one step: what another member at that step (or later, until this member's
    next snapshot) copies."""

    member: int
    step: int
    weight_age: int
    hparams: HParams
    score: float | None
    samples: tuple[float, ...]
    checkpoint: str
    checksum: str


@dataclass(frozen=True)
class ScoreRow:
    member: int
    step: int
    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class IntervalRow:
    """One completed interval of one member: the hyperparameters it trained with, and the score of its weights
    before it (the member's published score; a donor's, after a copy) and after it. What PB2 learns from."""

    member: int
    start_step: int
    end_step: int
    hparams: HParams
    start_score: float
    end_score: float


@dataclass(frozen=True)
class Event:
    member: int
    step: int
    kind: str  # an EventKind
    donor: int | None = None
    donor_step: int | None = None
    old_hparams: HParams | None = None
    new_hparams: HParams | None = None
    ops: dict[str, str] | None = None
    score: float | None = None
    donor_score: float | None = None
    message: str | None = None
    time: float = field(default_factory=time.time)
    weight_age: int | None = None  # for a copy: the training steps the copied weights had received


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _sha256(f: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return _sha256(f)


def write_atomic(path: Path, write: Callable[[Path], None]) -> str:
    """Run ``write(tmp)``, fsync it, rename it over ``path`` and return its SHA-256.

    A reader sees either no file or the complete file, never a partial one, even if the process is killed mid-write.
    The temporary name keeps ``path``'s suffix, for writers that add their own (``np.save``).
    """
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
            checksum = _sha256(f)
        os.replace(tmp, path)
    except Exception as exc:
        # a writer such as torch.save reports a full disk in its own words: the free space at the moment it failed
        # (the partial file still there) tells a full disk from a failure of the writer's own
        full = _free_bytes(path.parent) < FULL_BELOW_BYTES
        tmp.unlink(missing_ok=True)
        if full and not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
            raise OSError(errno.ENOSPC, f"no space left on the device to write {path.name} ({exc})") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The directory is not fsynced: the store commits with synchronous=NORMAL, which is durable across process
    # deaths (kill -9, OOM) but may lose its last commits on power loss; a rename lost with them shows up as a
    # checksum mismatch on load, and the member is then replaced like any failed member.
    return checksum


FULL_BELOW_BYTES = 1 << 20  # a file system with less room than this when a write failed was full


def _free_bytes(folder: Path) -> int:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return FULL_BELOW_BYTES  # unknown: not taken for full
    return stat.f_bavail * stat.f_frsize


def verify_checkpoint(path: Path, checksum: str) -> None:
    """Raise ``CorruptCheckpoint`` unless ``path`` exists and hashes to ``checksum``."""
    if not path.is_file():
        raise CorruptCheckpoint(f"checkpoint {path} is missing")
    actual = sha256_file(path)
    if actual != checksum:
        raise CorruptCheckpoint(f"checkpoint {path} is corrupt: sha256 {actual[:12]}… != recorded {checksum[:12]}…")


def check_store_file(path: Path) -> None:
    """Refuse, in one line, a ``pbt.sqlite`` that is missing, empty or not a SQLite database (before SQLite opens it:
    opening such a file for writing would turn it into a fresh, empty store)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path.parent} is not a run directory (no {DB_NAME} in it)") from None
    if not head:
        raise NotARunStore(f"{path} is empty: not a run's store (was the run's creation interrupted?)", path=path)
    if head != b"SQLite format 3\x00":
        raise NotARunStore(f"{path} is not a SQLite database: it was overwritten or is not a run's store",
                           path=path)


class NotARunStore(ConfigError):
    """A file named ``pbt.sqlite`` that is not a run's store (empty, not SQLite, or without a run in it)."""

class StoreReader:
    """A run store opened for reading only: what ``status``, ``compare``, ``report``, ``replay`` and
    ``pbt.results.Results`` use. It never writes: it creates no table, file or folder (not even SQLite's ``-wal`` and
    ``-shm`` files where they are absent), and it opens a store on a read-only mount. Safe while the owner trains."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / CKPT_DIR
        self.path = self.run_dir / DB_NAME
        self.wal_path = self.path.with_name(f"{DB_NAME}-wal")
        check_store_file(self.path)
        # a store that SQLite cannot read raises sqlite3.DatabaseError here, from this object (``repro.cli`` words it)
        self.db = sqlite3.connect(self._read_only_uri(), uri=True, timeout=30.0, isolation_level=None)
        self.columns = {t: {r[1] for r in self.db.execute(f"PRAGMA table_info({t})")} for t in ("member", "event")}
        meta = self.meta() if "meta" in self._tables() else {}
        if not meta.get("domain") or "config" not in meta or not self.columns["member"]:
            self.db.close()
            raise NotARunStore(f"{self.path} holds no run (no domain, config or members in it)", path=self.path)

    def _read_only_uri(self) -> str:
        """``immutable=1`` where nothing can be writing (no live owner and no ``-wal`` file, or a read-only
        directory), so SQLite makes no ``-shm``/``-wal`` file; otherwise ``mode=ro``, which shares the owner's."""
        live = self.wal_path.exists() or RunLock.owner(self.run_dir) is not None
        writable = os.access(self.run_dir, os.W_OK)
        mode = "mode=ro" if live and writable else "immutable=1"
        return f"file:{urllib.parse.quote(str(self.path.resolve()))}?{mode}"

    def _tables(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _select(self, table: str, columns: Sequence[str]) -> str:
        """A column list for ``table``, with NULL for columns a store written before them lacks."""
        have = self.columns.get(table) or set(columns)
        return ", ".join(c if c in have else "NULL" for c in columns)

    @staticmethod
    def exists(run_dir: Path | str) -> bool:
        return (Path(run_dir) / DB_NAME).is_file()

    @staticmethod
    def readable(run_dir: Path | str) -> bool:
        """Whether another process could still read the run's store whole (what ``status`` would do)."""
        try:
            with StoreReader(run_dir) as reader:
                reader.check_integrity()
            return True
        except (sqlite3.Error, OSError, ConfigError):
            return False

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_integrity(self) -> None:
        """Raise ``sqlite3.DatabaseError`` naming what is damaged unless SQLite's ``quick_check`` passes (an owner
        runs it before it trains on a store again)."""
        problems = [r[0] for r in self.db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            found = "; ".join(" ".join(p.split()) for p in problems if not p.startswith("***"))
            raise sqlite3.DatabaseError(f"quick_check: {found}")

    def state(self) -> tuple[str, str]:
        """What the run is doing, and why: ``running`` (its owner is alive), ``interrupted`` (stopped or killed; a
        resume continues it), ``failed`` (the reason) or ``finished``. A run whose store says running but that no
        live process owns was killed."""
        meta = self.meta()
        status = str(meta.get("status", "?"))
        if status == RunStatus.RUNNING:
            owner = RunLock.owner(self.run_dir)
            recorded = meta.get("owner") or {}
            if owner is None and recorded_owner_alive(recorded):
                return RunStatus.RUNNING, f"owned by process {recorded['pid']} (its {LOCK_NAME} is missing or replaced)"
            if owner is None:
                return RunStatus.INTERRUPTED, "no process owns it (it was killed); `pbt-repro resume DIR` continues it"
            return RunStatus.RUNNING, f"owned by process {owner}"
        if status == RunStatus.FAILED:
            return RunStatus.FAILED, str(meta.get("failure") or "reason not recorded")
        if status == RunStatus.INTERRUPTED:
            return RunStatus.INTERRUPTED, "`pbt-repro resume DIR` continues it"
        return status, ""

    def trained_any(self) -> bool:
        """Whether any member has trained a step (a run that has not can be started over without loss)."""
        return self.db.execute("SELECT 1 FROM score LIMIT 1").fetchone() is not None or \
            self.db.execute("SELECT 1 FROM member WHERE step > 0 LIMIT 1").fetchone() is not None

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def members(self) -> list[MemberRow]:
        rows = self.db.execute(f"SELECT {self._select('member', MEMBER_COLUMNS)} FROM member ORDER BY id").fetchall()
        return [
            MemberRow(id=r[0], seed=r[1], hparams=json.loads(r[2]), step=r[3], steps_since_ready=r[4], score=r[5],
                      samples=tuple(json.loads(r[6])), checkpoint=r[7], checksum=r[8], status=r[9], failures=r[10],
                      error=r[11], weight_age=r[3] if r[12] is None else r[12], decision_due=r[13])
            for r in rows
        ]

    def snapshot_at(self, member: int, step: int) -> Snapshot | None:
        """``member``'s published state as it was at ``step``: its last snapshot at or before it."""
        r = self.db.execute("SELECT * FROM snapshot WHERE member = ? AND step <= ? ORDER BY step DESC LIMIT 1",
                            (member, step)).fetchone()
        return None if r is None else Snapshot(member=r[0], step=r[1], weight_age=r[2], hparams=json.loads(r[3]),
                                               score=r[4], samples=tuple(json.loads(r[5])), checkpoint=r[6],
                                               checksum=r[7])

    def snapshots(self) -> list[Snapshot]:
        """Every kept snapshot, by member and step."""
        rows = self.db.execute("SELECT * FROM snapshot ORDER BY member, step").fetchall()
        return [Snapshot(member=r[0], step=r[1], weight_age=r[2], hparams=json.loads(r[3]), score=r[4],
                         samples=tuple(json.loads(r[5])), checkpoint=r[6], checksum=r[7]) for r in rows]

    def checkpoint_path(self, member: MemberRow) -> Path | None:
        return None if member.checkpoint is None else self.checkpoint_dir / member.checkpoint

    def scores(self, member: int | None = None) -> list[ScoreRow]:
        query, args = "SELECT * FROM score", ()
        if member is not None:
            query, args = query + " WHERE member = ?", (member,)
        rows = self.db.execute(query + " ORDER BY time, member, step", args).fetchall()
        return [ScoreRow(member=r[0], step=r[1], score=r[2], metrics=json.loads(r[3]), time=r[4]) for r in rows]

    def score_curves(self, until: int) -> dict[int, tuple[tuple[int, float], ...]]:
        """Each member's (step, score) points up to step ``until``, in ascending steps (without their metrics)."""
        curves: dict[int, list[tuple[int, float]]] = {}
        for member, step, score in self.db.execute("SELECT member, step, score FROM score WHERE step <= ? "
                                                   "ORDER BY member, step, time", (until,)):
            curves.setdefault(member, []).append((step, score))
        return {m: tuple(c) for m, c in curves.items()}

    def events(self, kind: str | None = None, step: int | None = None) -> list[Event]:
        """Every event in the order it was recorded; only those of ``kind``, or made at ``step``, when given."""
        conditions = {"kind = ?": kind, "step = ?": step}
        where = [c for c, v in conditions.items() if v is not None]
        query = "SELECT * FROM event" + (" WHERE " + " AND ".join(where) if where else "")
        args = tuple(v for v in conditions.values() if v is not None)
        rows = self.db.execute(query.replace("*", self._select("event", EVENT_COLUMNS)) + " ORDER BY id",
                               args).fetchall()
        load = lambda v: None if v is None else json.loads(v)  # noqa: E731
        return [
            Event(time=r[1], member=r[2], step=r[3], kind=r[4], donor=r[5], donor_step=r[6], old_hparams=load(r[7]),
                  new_hparams=load(r[8]), ops=load(r[9]), score=r[10], donor_score=r[11], message=r[12],
                  weight_age=r[13])
            for r in rows
        ]

    def intervals(self, since: int, until: int) -> list[IntervalRow]:
        """The completed intervals that started at or after step ``since`` and ended at or before step ``until``, by
        start step and member (none in a store written before they were kept)."""
        if "ready_interval" not in self._tables():
            return []
        rows = self.db.execute("SELECT member, start_step, end_step, hparams, start_score, end_score FROM "
                               "ready_interval WHERE start_step >= ? AND end_step <= ? ORDER BY start_step, member",
                               (since, until)).fetchall()
        return [IntervalRow(member=r[0], start_step=r[1], end_step=r[2], hparams=json.loads(r[3]), start_score=r[4],
                            end_score=r[5]) for r in rows]

    def compute(self) -> dict[str, Any]:
        """Compute planned and used: member-steps (committed) and wall seconds."""
        meta = self.meta()
        pbt = meta.get("config", {}).get("pbt", {})
        age = "weight_age" if "weight_age" in self.columns["member"] else "NULL"
        used, most, oldest, youngest = self.db.execute(
            f"SELECT COALESCE(SUM(step), 0), COALESCE(MAX(step), 0), MAX({age}), "
            f"MIN(CASE WHEN status = '{MemberStatus.DONE}' THEN {age} END) FROM member").fetchone()
        return {
            "planned_steps": int(pbt.get("population", 0)) * int(pbt.get("budget_steps", 0)),
            "used_steps": int(used),  # what the members' slots trained: the compute spent
            "budget_steps": int(pbt.get("budget_steps", 0)),
            "max_member_steps": int(most),
            # the most training any member's weights received (None: a store written before weight ages were kept)
            "max_weight_age": None if oldest is None else int(oldest),
            # the least training a finished member's weights received (below the budget: a copy lost training)
            "min_weight_age": None if youngest is None else int(youngest),
            "wall_seconds": float(meta.get("wall_seconds", 0.0)),
        }


class Store(StoreReader):
    """A run store opened by its owner, to write: only ``pbt.rundir.RunDir`` makes one, while it holds the run's
    lock (``guard``, called before every transaction, stops the owner once the lock is no longer its own)."""

    def __init__(self, run_dir: Path | str, guard: Callable[[], None] | None = None):
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / CKPT_DIR
        self.path = self.run_dir / DB_NAME
        self.wal_path = self.path.with_name(f"{DB_NAME}-wal")
        self.guard = guard
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self._connect()
        self.columns = {t: {r[1] for r in self.db.execute(f"PRAGMA table_info({t})")} for t in ("member", "event")}
        self.upgraded = False

    def _upgrade(self) -> None:
        """Bring the store to the current layout (tables and columns added since it was made), at the first write:
        reopening a finished run only to read it (``reproduce`` over finished runs) leaves it byte for byte."""
        self.upgraded = True
        self.db.executescript(SCHEMA)
        for table, column, kind in MIGRATIONS:
            if column not in {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self.columns = {t: {r[1] for r in self.db.execute(f"PRAGMA table_info({t})")} for t in ("member", "event")}

    def _connect(self) -> None:
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills; WAL keeps commits atomic
        self.wal = self._wal_identity()

    def _wal_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.wal_path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _check_wal(self) -> None:
        """Stop at the first write after the WAL file was deleted (or replaced) from outside. SQLite would go on
        writing into the open, unlinked file, so the run would train on and its store end up claiming whatever it
        last wrote while other processes saw another store. One stat per transaction; the open connection still
        holds every commit, so they are checkpointed into the database file before stopping."""
        now = self._wal_identity()
        if now == self.wal:
            return
        if self.wal is None:  # not there when this connection opened: the first write made it
            self.wal = now
            return
        what = "deleted" if now is None else "replaced"
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.db.close()
            self._connect()  # a fresh WAL file, so the reason can still be recorded
            saved = "every commit so far was saved into the database (`pbt-repro resume DIR` continues it)"
        except sqlite3.Error:
            saved = "its recent history may be lost"
        raise StoreDamaged(f"{self.wal_path} was {what} from outside while the run used it, so the run stopped; "
                           f"{saved}")

    def initialise(self, members: list[MemberRow], meta: dict[str, Any]) -> None:
        """Write a new run's members and metadata in one transaction: a store holds all of a run or none of it."""
        with self.transaction() as db:
            for row in members:
                self._write_member(db, row)
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])

    def clear_decisions(self, members: Sequence[int]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE member SET decision_due = NULL WHERE id = ?", [(i,) for i in members])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self.guard is not None:
            self.guard()
        if not self.upgraded:
            self._upgrade()
        self._check_wal()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def set_meta(self, **values: Any) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

    def add_members(self, rows: list[MemberRow]) -> None:
        with self.transaction() as db:
            for row in rows:
                self._write_member(db, row)

    @staticmethod
    def _write_member(db: sqlite3.Connection, row: MemberRow) -> None:
        db.execute(
            MEMBER_INSERT,
            (row.id, row.seed, _json(row.hparams), row.step, row.steps_since_ready, row.score,
             _json(list(row.samples)), row.checkpoint, row.checksum, row.status, row.failures, row.error,
             row.weight_age, row.decision_due),
        )
        if row.checkpoint is not None and row.checksum is not None:  # the state others may copy at this step
            db.execute("INSERT OR REPLACE INTO snapshot VALUES (?,?,?,?,?,?,?,?)",
                       (row.id, row.step, row.weight_age, _json(row.hparams), row.score, _json(list(row.samples)),
                        row.checkpoint, row.checksum))

    def commit(
        self,
        member: MemberRow,
        scores: Sequence[ScoreRow] = (),
        events: Sequence[Event] = (),
        meta: dict[str, Any] | None = None,
        keep_from: int | None = None,
        decided: Sequence[int] = (),
        prune_all: bool = True,
        interval: IntervalRow | None = None,
    ) -> None:
        """Publish a member's new state with the scores and events that led to it (and any run metadata) in one
        transaction, then delete the checkpoints that nothing refers to any more.

        ``keep_from``: the lowest step at which a member may still copy another (the slowest member that will still
        decide); each member's snapshots before its last one at or below it are dropped. None keeps them all. Only
        the publishing member's snapshots change in a commit, so only they are pruned unless ``prune_all`` (when
        ``keep_from`` has moved on since the last commit).
        ``decided``: other members whose ready decision changed nothing; their pending decision is cleared here,
        with the first change that follows it (until then, deciding again would decide the same).
        ``interval``: the completed interval that ``scores`` close, kept for PB2 (``IntervalRow``)."""
        prune = ("FROM snapshot WHERE step < (SELECT COALESCE(MAX(s.step), 0) FROM snapshot s "
                 "WHERE s.member = snapshot.member AND s.step <= ?)" + ("" if prune_all else " AND member = ?"))
        prune_args = (keep_from,) if prune_all else (keep_from, member.id)
        with self.transaction() as db:
            if meta:
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in meta.items()])
            if decided:
                db.executemany("UPDATE member SET decision_due = NULL WHERE id = ?", [(i,) for i in decided])
            # the files this commit may leave unused: the member's previous checkpoint, and pruned snapshots'
            candidates = {r[0] for r in db.execute("SELECT checkpoint FROM member WHERE id = ? AND checkpoint IS NOT "
                                                   "NULL", (member.id,))}
            self._write_member(db, member)
            if keep_from is not None:  # after the new snapshot is in: it may be what makes an older one prunable
                candidates |= {r[0] for r in db.execute(f"SELECT checkpoint {prune}", prune_args)}
                db.execute(f"DELETE {prune}", prune_args)
            if scores:
                db.executemany("INSERT INTO score VALUES (?,?,?,?,?)",
                               [(s.member, s.step, s.score, _json(s.metrics), s.time) for s in scores])
            if interval is not None:
                db.execute("INSERT OR REPLACE INTO ready_interval VALUES (?,?,?,?,?,?)",
                           (interval.member, interval.start_step, interval.end_step, _json(interval.hparams),
                            interval.start_score, interval.end_score))
            if events:
                db.executemany(
                    "INSERT INTO event (time, member, step, kind, donor, donor_step, old_hparams, new_hparams, ops, "
                    "score, donor_score, message, weight_age) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(e.time, e.member, e.step, e.kind, e.donor, e.donor_step, _json(e.old_hparams),
                      _json(e.new_hparams), _json(e.ops), e.score, e.donor_score, e.message, e.weight_age)
                     for e in events])
            unused = [name for name in candidates if not db.execute(
                "SELECT 1 FROM member WHERE checkpoint = ? UNION ALL SELECT 1 FROM snapshot WHERE checkpoint = ? "
                "LIMIT 1", (name, name)).fetchone()]
        for name in unused:  # after the commit: a kill before this line leaves orphans, which the next start removes
            (self.checkpoint_dir / name).unlink(missing_ok=True)

    @staticmethod
    def _referenced(db: sqlite3.Connection) -> set[str]:
        """Checkpoint files a member or a kept snapshot refers to."""
        return {r[0] for r in db.execute("SELECT checkpoint FROM member WHERE checkpoint IS NOT NULL "
                                         "UNION SELECT checkpoint FROM snapshot")}

    def remove_orphan_checkpoints(self) -> list[str]:
        """Delete checkpoint files nothing refers to (written by an interval that was never committed)."""
        if not self.upgraded:  # a store of an older layout has no snapshot table yet
            self._upgrade()
        used = self._referenced(self.db)
        removed = []
        for path in self.checkpoint_dir.iterdir():
            if path.name not in used:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed
