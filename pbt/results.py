"""Reading a run from its store, finished or still running: the best member, its checkpoint and schedule, and the
run's tables (members, scores, events), as rows or as pandas DataFrames.

    >>> from pbt.results import Results
    >>> results = Results("runs/mine")                                       # doctest: +SKIP
    >>> results.best.id, results.best.score, results.checkpoint(results.best)  # doctest: +SKIP
    >>> [(s.member, s.age_start, s.hparams) for s in results.schedule()]      # doctest: +SKIP
    >>> results.dataframe("scores")                                           # doctest: +SKIP

Nothing here writes to the run or imports the code it names, so it is safe while another process trains the run, on a
read-only copy, and without the task's dependencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pbt.algorithm import Schedule
from pbt.checkpoints import verify_checkpoint
from pbt.lineage import Segment, lineage, training_spans
from pbt.rows import COUNTED, Event, MemberRow, Mode, ScoreRow, oriented, run_mode
from pbt.store import CKPT_DIR, StoreReader


class Results:
    """A snapshot of one run directory, read once through a ``StoreReader`` (which writes nothing and imports no
    code). The one place that says which members count (``COUNTED``) and which member is best (``mode``: the highest
    score, or the lowest where the run minimises it)."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        with StoreReader(run_dir) as store:
            self.meta: dict[str, Any] = store.meta()
            self.members: list[MemberRow] = store.members()
            self.events: list[Event] = store.events()
            self.scores: list[ScoreRow] = store.scores()
            self.compute: dict[str, Any] = store.compute()
            self.state = store.state()
        self.mode: Mode = run_mode(self.meta["config"])

    @property
    def counted(self) -> list[MemberRow]:
        """The members whose latest score counts: scored, and neither dropped nor failed."""
        return [m for m in self.members if m.score is not None and m.status in COUNTED]

    @property
    def finals(self) -> list[float]:
        """The latest score of every counted member (a finished run: each member's final score)."""
        return [m.score for m in self.counted if m.score is not None]

    @property
    def best(self) -> MemberRow | None:
        """The member with the best latest score (the highest; the lowest under mode min; ties: the lowest id), or
        None before any score."""
        return best_of(self.members, self.mode)

    def member(self, which: int | str = "best") -> MemberRow:
        """A member by id, or ``"best"``."""
        chosen = self.best if which == "best" else next((m for m in self.members if str(m.id) == str(which)), None)
        if chosen is None:
            raise ValueError(
                f"{self.run_dir} has no member {which!r} (members: {', '.join(str(m.id) for m in self.members)})"
            )
        return chosen

    def checkpoint(self, member: MemberRow) -> Path:
        """The member's current checkpoint file, verified against its recorded checksum."""
        if member.checkpoint is None:
            raise ValueError(f"member {member.id} of {self.run_dir} has no checkpoint yet")
        path = self.run_dir / CKPT_DIR / member.checkpoint
        verify_checkpoint(path, member.checksum or "")
        return path

    def schedule(self, which: int | str = "best") -> list[Segment]:
        """The hyperparameters the member's weights were trained with, followed back through every copy: segments
        with the member that trained them, its step range and the weights' age at the start."""
        chosen = self.member(which)
        return lineage(chosen.id, self.meta["initial_hparams"], self.events, {m.id: m.step for m in self.members})

    def discovered_schedule(self, which: int | str = "best", final: bool = False) -> Schedule:
        """The member's schedule as a function of its weights' age (``schedule``'s segments placed by
        ``training_spans``), to replay from scratch; with ``final``, the last hyperparameters its weights trained
        with, held from age 0 on."""
        segments = self.schedule(which)
        if final:
            return Schedule(((0, dict(segments[-1].hparams)),))
        changes: list[tuple[int, dict[str, Any]]] = []
        for segment, (age, _) in zip(segments, training_spans(segments)):
            age = age if changes else 0
            if changes and changes[-1][0] == age:  # superseded at the same age: the later values trained
                changes.pop()
            if not changes or changes[-1][1] != segment.hparams:
                changes.append((age, dict(segment.hparams)))
        return Schedule(tuple(changes))

    def table(self, of: str = "members") -> list[dict[str, Any]]:
        """Rows of one of the run's ``TABLES``: ``members``, one per member as it stands (hyperparameters as
        ``h/NAME``); ``scores``, every evaluation in the order made, with its metrics (``train/NAME``, ``eval/NAME``,
        ``time/train_s``, ...); ``events``, every exploit, explore and failure in the order recorded (hyperparameters
        as ``before/NAME`` and ``after/NAME``, an explore's operation as ``op/NAME``)."""
        if of == "members":
            return [member_row(m) for m in self.members]
        if of == "scores":
            return [score_row(s) for s in self.scores]
        if of == "events":
            return [event_row(e) for e in self.events]
        raise ValueError(f"no table {of!r} in a run (tables: {', '.join(TABLES)})")

    def dataframe(self, of: str = "members") -> Any:
        """``table(of)`` as a ``pandas.DataFrame`` when pandas is installed (``pip install pandas``), else the rows
        themselves. An empty table keeps its fixed columns."""
        rows = self.table(of)
        try:
            import pandas
        except ImportError:
            return rows
        return pandas.DataFrame(rows) if rows else pandas.DataFrame(columns=list(TABLES[of]))


# each table's fixed columns, in order; hyperparameters, metrics and explore operations follow by name
TABLES = {
    "members": ("member", "step", "weight_age", "score", "status", "failures"),
    "scores": ("member", "step", "score", "time"),
    "events": (
        "member",
        "step",
        "kind",
        "donor",
        "donor_step",
        "weight_age",
        "score",
        "donor_score",
        "message",
        "time",
    ),
}


def member_row(m: MemberRow) -> dict[str, Any]:
    return {
        "member": m.id,
        "step": m.step,
        "weight_age": m.weight_age,
        "score": m.score,
        "status": m.status,
        "failures": m.failures,
        **{f"h/{k}": v for k, v in m.hparams.items()},
    }


def score_row(s: ScoreRow) -> dict[str, Any]:
    return {
        "member": s.member,
        "step": s.step,
        "score": s.score,
        "time": s.time,
        **s.metrics,  # named train/..., eval/... and time/...: apart from the fixed columns
    }


def event_row(e: Event) -> dict[str, Any]:
    return {
        "member": e.member,
        "step": e.step,
        "kind": e.kind,
        "donor": e.donor,
        "donor_step": e.donor_step,
        "weight_age": e.weight_age,
        "score": e.score,
        "donor_score": e.donor_score,
        "message": e.message,
        "time": e.time,
        **{f"before/{k}": v for k, v in (e.old_hparams or {}).items()},
        **{f"after/{k}": v for k, v in (e.new_hparams or {}).items()},
        **{f"op/{k}": v for k, v in (e.ops or {}).items()},
    }


def best_of(members: list[MemberRow], mode: str) -> MemberRow | None:
    """The counted member with the best latest score under ``mode`` (ties: the lowest id), or None before any
    score."""
    scored = [m for m in members if m.score is not None and m.status in COUNTED]
    return max(scored, key=lambda m: (oriented(m.score, mode), -m.id)) if scored else None  # type: ignore[arg-type]


def saved_member(run_dir: Path | str, which: str = "best") -> tuple[dict[str, Any], MemberRow, Path]:
    """A run's stored config, its member ``which`` (an id, or ``best``: the best latest score, by the run's mode, among
    those with a checkpoint) and that member's verified checkpoint, for tools that work on a run (play, translate,
    samples)."""
    results = Results(run_dir)
    with_checkpoint = [m for m in results.members if m.checkpoint is not None]
    if not with_checkpoint:
        raise ValueError(f"{run_dir} has no member with a checkpoint yet")
    if which == "best":
        chosen = max(
            with_checkpoint, key=lambda m: oriented(m.score, results.mode) if m.score is not None else float("-inf")
        )
    else:
        chosen = results.member(which)
    return results.meta["config"], chosen, results.checkpoint(chosen)
