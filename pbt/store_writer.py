"""The store's one writer: the run's owner publishes each member's new state, with the scores and events that led
to it, in one SQLite transaction (``Store.commit``), and deletes the checkpoints nothing refers to any more."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pbt.rows import Event, IntervalRow, MemberRow, ScoreRow
from pbt.space import ConfigError
from pbt.store import (
    CKPT_DIR,
    DB_NAME,
    MEMBER_COLUMNS,
    SCHEMA,
    STORE_VERSION,
    StoreReader,
    check_store_version,
)

MEMBER_INSERT = (
    f"INSERT OR REPLACE INTO member ({', '.join(MEMBER_COLUMNS)}) VALUES ({', '.join('?' * len(MEMBER_COLUMNS))})"
)


class StoreDamaged(sqlite3.DatabaseError):
    """The store's files were changed from outside while the run used them (its WAL file deleted or replaced)."""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


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
        if not self._tables():  # a new store: its layout and the layout's version, in one transaction
            self.db.executescript(f"BEGIN; {SCHEMA} PRAGMA user_version = {STORE_VERSION}; COMMIT;")
        else:
            try:
                check_store_version(self.db, self.path)
            except ConfigError:
                self.db.close()
                raise

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
        raise StoreDamaged(
            f"{self.wal_path} was {what} from outside while the run used it, so the run stopped; {saved}"
        )

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

    @staticmethod
    def _write_member(db: sqlite3.Connection, row: MemberRow) -> None:
        db.execute(
            MEMBER_INSERT,
            (
                row.id,
                row.seed,
                _json(row.hparams),
                row.step,
                row.steps_since_ready,
                row.score,
                _json(list(row.samples)),
                row.checkpoint,
                row.checksum,
                row.status,
                row.failures,
                row.error,
                row.weight_age,
                row.decision_due,
            ),
        )
        if row.checkpoint is not None and row.checksum is not None:  # the state others may copy at this step
            db.execute(
                "INSERT OR REPLACE INTO snapshot VALUES (?,?,?,?,?,?,?,?)",
                (
                    row.id,
                    row.step,
                    row.weight_age,
                    _json(row.hparams),
                    row.score,
                    _json(list(row.samples)),
                    row.checkpoint,
                    row.checksum,
                ),
            )

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
        prune = (
            "FROM snapshot WHERE step < (SELECT COALESCE(MAX(s.step), 0) FROM snapshot s "
            "WHERE s.member = snapshot.member AND s.step <= ?)" + ("" if prune_all else " AND member = ?")
        )
        prune_args = (keep_from,) if prune_all else (keep_from, member.id)
        with self.transaction() as db:
            if meta:
                db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
                )
            if decided:
                db.executemany("UPDATE member SET decision_due = NULL WHERE id = ?", [(i,) for i in decided])
            # the files this commit may leave unused: the member's previous checkpoint, and pruned snapshots'
            candidates = {
                r[0]
                for r in db.execute(
                    "SELECT checkpoint FROM member WHERE id = ? AND checkpoint IS NOT NULL", (member.id,)
                )
            }
            self._write_member(db, member)
            if keep_from is not None:  # after the new snapshot is in: it may be what makes an older one prunable
                candidates |= {r[0] for r in db.execute(f"SELECT checkpoint {prune}", prune_args)}
                db.execute(f"DELETE {prune}", prune_args)
            if scores:
                db.executemany(
                    "INSERT INTO score VALUES (?,?,?,?,?)",
                    [(s.member, s.step, s.score, _json(s.metrics), s.time) for s in scores],
                )
            if interval is not None:
                db.execute(
                    "INSERT OR REPLACE INTO ready_interval VALUES (?,?,?,?,?,?)",
                    (
                        interval.member,
                        interval.start_step,
                        interval.end_step,
                        _json(interval.hparams),
                        interval.start_score,
                        interval.end_score,
                    ),
                )
            if events:
                db.executemany(
                    "INSERT INTO event (time, member, step, kind, donor, donor_step, old_hparams, new_hparams, ops, "
                    "score, donor_score, message, weight_age) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            e.time,
                            e.member,
                            e.step,
                            e.kind,
                            e.donor,
                            e.donor_step,
                            _json(e.old_hparams),
                            _json(e.new_hparams),
                            _json(e.ops),
                            e.score,
                            e.donor_score,
                            e.message,
                            e.weight_age,
                        )
                        for e in events
                    ],
                )
            unused = [
                name
                for name in candidates
                if not db.execute(
                    "SELECT 1 FROM member WHERE checkpoint = ? UNION ALL SELECT 1 FROM snapshot WHERE checkpoint = ? "
                    "LIMIT 1",
                    (name, name),
                ).fetchone()
            ]
        for name in unused:  # after the commit: a kill before this line leaves orphans, which the next start removes
            (self.checkpoint_dir / name).unlink(missing_ok=True)

    @staticmethod
    def _referenced(db: sqlite3.Connection) -> set[str]:
        """Checkpoint files a member or a kept snapshot refers to."""
        return {
            r[0]
            for r in db.execute(
                "SELECT checkpoint FROM member WHERE checkpoint IS NOT NULL UNION SELECT checkpoint FROM snapshot"
            )
        }

    def remove_orphan_checkpoints(self) -> list[str]:
        """Delete checkpoint files nothing refers to (written by an interval that was never committed)."""
        used = self._referenced(self.db)
        removed = []
        for path in self.checkpoint_dir.iterdir():
            if path.name not in used:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed
