"""The population store: one SQLite database per run (WAL mode), plus checkpoint files beside it.

It holds the run's metadata (config, seed, git commit, machine, times), every member's current hyperparameters,
step, weight age, score and checkpoint, the full score history, every exploit / explore / failure event, and each
completed interval's hyperparameters and score change (what PB2 learns from). Lineages and hyperparameter schedules are
rebuilt from the events afterwards.

Here are the store's layout (its tables) and ``StoreReader``, which anyone may use to read a run, even while it
trains. Only the run's owner writes, through ``pbt.store_writer.Store``. What the store holds, as Python values, is
``pbt.rows``; the checkpoint files beside it are ``pbt.checkpoints``'; the lock that makes one process the owner is
``pbt.lock``'s.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from pbt.lock import LOCK_NAME, RunLock, recorded_owner_alive
from pbt.rows import Event, IntervalRow, MemberRow, MemberStatus, RunStatus, ScoreRow, Snapshot
from pbt.space import ConfigError

DB_NAME = "pbt.sqlite"
CKPT_DIR = "checkpoints"
# The layout below, recorded in the database header (SQLite's ``user_version``) when a store is created: a store of
# any other layout is refused whole rather than read in part.
STORE_VERSION = 1

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
MEMBER_COLUMNS = (
    "id",
    "seed",
    "hparams",
    "step",
    "steps_since_ready",
    "score",
    "samples",
    "checkpoint",
    "checksum",
    "status",
    "failures",
    "error",
    "weight_age",
    "decision_due",
)
EVENT_COLUMNS = (
    "id",
    "time",
    "member",
    "step",
    "kind",
    "donor",
    "donor_step",
    "old_hparams",
    "new_hparams",
    "ops",
    "score",
    "donor_score",
    "message",
    "weight_age",
)


def check_store_file(path: Path) -> int:
    """Refuse, in one line, a ``pbt.sqlite`` that is missing, empty or not a SQLite database (before SQLite opens it:
    opening such a file for writing would turn it into a fresh, empty store); else the layout version its header
    records (``user_version``, bytes 60 to 63; written when the store was made, and never changed)."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path.parent} is not a run directory (no {DB_NAME} in it)") from None
    if not head:
        raise NotARunStore(f"{path} is empty: not a run's store (was the run's creation interrupted?)", path=path)
    if head[:16] != b"SQLite format 3\x00":
        raise NotARunStore(f"{path} is not a SQLite database: it was overwritten or is not a run's store", path=path)
    return int.from_bytes(head[60:64], "big")


class NotARunStore(ConfigError):
    """A file named ``pbt.sqlite`` that is not a run's store (empty, not SQLite, or without a run in it)."""


class StoreVersionError(ConfigError):
    """A run's store of a layout this code does not read (``STORE_VERSION``)."""


def check_store_version(db: sqlite3.Connection, path: Path) -> None:
    """Refuse, in one line, a store whose recorded layout version is not ``STORE_VERSION`` (0: none recorded)."""
    found = db.execute("PRAGMA user_version").fetchone()[0]
    if found != STORE_VERSION:
        raise StoreVersionError(
            f"{path} is a run store of layout version {found}; this code reads layout version {STORE_VERSION} only",
            path=path,
        )


class StoreReader:
    """A run store opened for reading only: what ``status``, ``compare``, ``report``, ``replay`` and
    ``pbt.results.Results`` use. It never writes: it creates no table, file or folder (not even SQLite's ``-wal`` and
    ``-shm`` files where they are absent), and it opens a store on a read-only mount. Safe while the owner trains."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / CKPT_DIR
        self.path = self.run_dir / DB_NAME
        self.wal_path = self.path.with_name(f"{DB_NAME}-wal")
        version = check_store_file(self.path)
        # a store that SQLite cannot read raises sqlite3.DatabaseError here, from this object (``repro.cli`` words it)
        self.db = sqlite3.connect(self._read_only_uri(version), uri=True, timeout=30.0, isolation_level=None)
        tables = self._tables()
        meta = self.meta() if "meta" in tables else {}
        if not meta.get("domain") or "config" not in meta or "member" not in tables:
            self.db.close()
            raise NotARunStore(f"{self.path} holds no run (no domain, config or members in it)", path=self.path)
        try:
            check_store_version(self.db, self.path)
        except StoreVersionError:
            self.db.close()
            raise

    def _read_only_uri(self, version: int) -> str:
        """``immutable=1`` where nothing can be writing (no live owner and no ``-wal`` file, or a read-only
        directory) or nothing is read but what refuses it (a store of another layout ``version``), so SQLite makes
        no ``-shm``/``-wal`` file; otherwise ``mode=ro``, which shares the owner's."""
        live = self.wal_path.exists() or RunLock.owner(self.run_dir) is not None
        writable = os.access(self.run_dir, os.W_OK)
        mode = "mode=ro" if live and writable and version == STORE_VERSION else "immutable=1"
        return f"file:{urllib.parse.quote(str(self.path.resolve()))}?{mode}"

    def _tables(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

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
        return (
            self.db.execute("SELECT 1 FROM score LIMIT 1").fetchone() is not None
            or self.db.execute("SELECT 1 FROM member WHERE step > 0 LIMIT 1").fetchone() is not None
        )

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def members(self) -> list[MemberRow]:
        rows = self.db.execute(f"SELECT {', '.join(MEMBER_COLUMNS)} FROM member ORDER BY id").fetchall()
        return [
            MemberRow(
                id=r[0],
                seed=r[1],
                hparams=json.loads(r[2]),
                step=r[3],
                steps_since_ready=r[4],
                score=r[5],
                samples=tuple(json.loads(r[6])),
                checkpoint=r[7],
                checksum=r[8],
                status=r[9],
                failures=r[10],
                error=r[11],
                weight_age=r[12],
                decision_due=r[13],
            )
            for r in rows
        ]

    def snapshot_at(self, member: int, step: int) -> Snapshot | None:
        """``member``'s published state as it was at ``step``: its last snapshot at or before it."""
        r = self.db.execute(
            "SELECT * FROM snapshot WHERE member = ? AND step <= ? ORDER BY step DESC LIMIT 1", (member, step)
        ).fetchone()
        return None if r is None else _snapshot(r)

    def snapshots(self) -> list[Snapshot]:
        """Every kept snapshot, by member and step."""
        rows = self.db.execute("SELECT * FROM snapshot ORDER BY member, step").fetchall()
        return [_snapshot(r) for r in rows]

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
        for member, step, score in self.db.execute(
            "SELECT member, step, score FROM score WHERE step <= ? ORDER BY member, step, time", (until,)
        ):
            curves.setdefault(member, []).append((step, score))
        return {m: tuple(c) for m, c in curves.items()}

    def events(self, kind: str | None = None, step: int | None = None) -> list[Event]:
        """Every event in the order it was recorded; only those of ``kind``, or made at ``step``, when given."""
        conditions = {"kind = ?": kind, "step = ?": step}
        where = [c for c, v in conditions.items() if v is not None]
        query = f"SELECT {', '.join(EVENT_COLUMNS)} FROM event" + (" WHERE " + " AND ".join(where) if where else "")
        args = tuple(v for v in conditions.values() if v is not None)
        rows = self.db.execute(query + " ORDER BY id", args).fetchall()
        load = lambda v: None if v is None else json.loads(v)  # noqa: E731
        return [
            Event(
                time=r[1],
                member=r[2],
                step=r[3],
                kind=r[4],
                donor=r[5],
                donor_step=r[6],
                old_hparams=load(r[7]),
                new_hparams=load(r[8]),
                ops=load(r[9]),
                score=r[10],
                donor_score=r[11],
                message=r[12],
                weight_age=r[13],
            )
            for r in rows
        ]

    def intervals(self, since: int, until: int) -> list[IntervalRow]:
        """The completed intervals that started at or after step ``since`` and ended at or before step ``until``, by
        start step and member."""
        rows = self.db.execute(
            "SELECT member, start_step, end_step, hparams, start_score, end_score FROM "
            "ready_interval WHERE start_step >= ? AND end_step <= ? ORDER BY start_step, member",
            (since, until),
        ).fetchall()
        return [
            IntervalRow(
                member=r[0], start_step=r[1], end_step=r[2], hparams=json.loads(r[3]), start_score=r[4], end_score=r[5]
            )
            for r in rows
        ]

    def compute(self) -> dict[str, Any]:
        """Compute planned and used: member-steps (committed) and wall seconds."""
        meta = self.meta()
        pbt = meta.get("config", {}).get("pbt", {})
        used, most, oldest, youngest = self.db.execute(
            "SELECT COALESCE(SUM(step), 0), COALESCE(MAX(step), 0), COALESCE(MAX(weight_age), 0), "
            f"MIN(CASE WHEN status = '{MemberStatus.DONE}' THEN weight_age END) FROM member"
        ).fetchone()
        return {
            "planned_steps": int(pbt.get("population", 0)) * int(pbt.get("budget_steps", 0)),
            "used_steps": int(used),  # what the members' slots trained: the compute spent
            "budget_steps": int(pbt.get("budget_steps", 0)),
            "max_member_steps": int(most),
            "max_weight_age": int(oldest),  # the most training any member's weights received
            # the least training a finished member's weights received (below the budget: a copy lost training)
            "min_weight_age": None if youngest is None else int(youngest),
            "wall_seconds": float(meta.get("wall_seconds", 0.0)),
        }


def _snapshot(r: tuple[Any, ...]) -> Snapshot:
    """A ``snapshot`` table row as a ``Snapshot``."""
    return Snapshot(
        member=r[0],
        step=r[1],
        weight_age=r[2],
        hparams=json.loads(r[3]),
        score=r[4],
        samples=tuple(json.loads(r[5])),
        checkpoint=r[6],
        checksum=r[7],
    )
