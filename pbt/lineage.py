"""Lineages and hyperparameter schedules, rebuilt from a run's event records.

A member's weights have a history that crosses members: when member ``m`` exploits donor ``d`` at its step ``s``, it
continues from ``d``'s weights as they were at ``d``'s step ``donor_step``, with ``d``'s hyperparameters (then
explored). So the schedule that produced the weights a member ends with is ``d``'s schedule up to ``donor_step``,
followed by ``m``'s own from ``s`` on, and ``d``'s in turn is followed back the same way.

Events are taken in the order the store recorded them (``Store.events()``), which is the order the decisions were
made; steps alone cannot order them, since a donor may explore at the very step another member copied it at. Each
member's step axis is its own step counter (the one scores are recorded against). The weights' own axis, the training
they received through every copy, is the weight age the store records with each copy (``Segment.age_start``).

Pure functions, no plotting: ``repro.compare`` draws what these return.

>>> from pbt.store import Event
>>> events = [Event(member=1, step=4, kind="exploit", donor=0, donor_step=4, new_hparams={"lr": 0.1}),
...           Event(member=1, step=4, kind="explore", new_hparams={"lr": 0.12})]
>>> [(s.member, s.start, s.end, s.hparams["lr"]) for s in lineage(1, [{"lr": 0.1}, {"lr": 0.5}], events, {0: 8, 1: 8})]
[(0, 0, 4, 0.1), (1, 4, 8, 0.12)]
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pbt.rows import Event, EventKind
from pbt.space import HParams

# events after which a member continues from another member's weights
COPY_KINDS = (EventKind.EXPLOIT, EventKind.REPLACE)
# events that change a member's hyperparameters and not its weights (a copy of hyperparameters only, a replayed
# schedule's change)
HPARAM_KINDS = (EventKind.EXPLORE, EventKind.EXPLOIT_HPARAMS, EventKind.SCHEDULE)


@dataclass(frozen=True)
class Segment:
    """A stretch of training with constant hyperparameters, done by ``member`` from step ``start`` to ``end``."""

    member: int
    start: int
    end: int
    hparams: HParams
    age_start: int  # the weights' age (training received) at ``start``


@dataclass(frozen=True)
class Copy:
    """An exploit (or a failed member's replacement): ``member`` at its ``step`` took ``donor``'s weights as they were
    at ``donor_step``."""

    member: int
    step: int
    donor: int
    donor_step: int
    kind: str


@dataclass
class _Node:
    """One continuous life of a member's weights: from a fresh start or a copy, until the member copies again."""

    member: int
    parent: _Node | None  # the donor's life the weights were copied from (None: a fresh start)
    parent_step: int  # the donor's step at the copy
    parent_changes: int  # how many of the donor's hyperparameter changes had happened at the copy
    changes: list[tuple[int, HParams]] = field(default_factory=list)  # (step, hyperparameters from then on)
    start_age: int = 0  # the weights' age when this life began (recorded with the copy; 0 for a fresh start)


def _replay(initial: Sequence[HParams], events: Sequence[Event]) -> dict[int, _Node]:
    """Each member's current life after all ``events``, linked back to the lives it was copied from."""
    current = {
        i: _Node(member=i, parent=None, parent_step=0, parent_changes=0, changes=[(0, dict(h))])
        for i, h in enumerate(initial)
    }
    for e in events:
        if e.kind in COPY_KINDS and e.donor is not None:
            donor = current[e.donor]
            hparams = dict(e.new_hparams) if e.new_hparams is not None else dict(donor.changes[-1][1])
            current[e.member] = _Node(
                member=e.member,
                parent=donor,
                parent_step=e.donor_step if e.donor_step is not None else e.step,
                parent_changes=len(donor.changes),
                changes=[(e.step, hparams)],
                start_age=int(e.weight_age),  # type: ignore[arg-type]  # every copy records it
            )
        elif e.kind in HPARAM_KINDS and e.new_hparams is not None:
            current[e.member].changes.append((e.step, dict(e.new_hparams)))
    return current


def _segments(node: _Node, changes: Sequence[tuple[int, HParams]], end: int) -> list[Segment]:
    steps = [step for step, _ in changes[1:]] + [end]
    began = node.changes[0][0]
    segments = [
        Segment(
            member=node.member,
            start=start,
            end=max(start, stop),
            hparams=h,
            age_start=node.start_age + start - began,
        )
        for (start, h), stop in zip(changes, steps)
    ]
    # a change superseded at the same step (an exploit's copied values, explored at once) trained nothing
    return [s for s in segments if s.end > s.start] or segments[-1:]


def lineage(
    member: int, initial: Sequence[HParams], events: Sequence[Event], final_steps: Mapping[int, int]
) -> list[Segment]:
    """The schedule of the weights ``member`` ends with, followed back through every copy, oldest first.

    Args:
        member: The member whose final weights are followed back.
        initial: The initial hyperparameters of members 0..N-1 (the run's ``initial_hparams`` metadata).
        events: The run's events in recorded order (``Store.events()``).
        final_steps: Each member's step count at the end (``MemberRow.step``).

    Returns:
        Segments in training order; consecutive segments of different members are joined by a copy.
    """
    node: _Node | None = _replay(initial, events)[member]
    end, count = final_steps[member], None
    pieces: list[list[Segment]] = []
    while node is not None:
        changes = node.changes if count is None else node.changes[:count]
        pieces.append(_segments(node, changes, end))
        end, count, node = node.parent_step, node.parent_changes, node.parent
    return [segment for piece in reversed(pieces) for segment in piece]


def copies(events: Sequence[Event]) -> list[Copy]:
    """Every exploit and replacement, in recorded order: the edges of the lineage tree."""
    return [
        Copy(
            member=e.member,
            step=e.step,
            donor=e.donor,
            donor_step=e.donor_step if e.donor_step is not None else e.step,
            kind=e.kind,
        )
        for e in events
        if e.kind in COPY_KINDS and e.donor is not None
    ]


def lineage_copies(segments: Sequence[Segment]) -> list[Copy]:
    """The copies that join consecutive segments of a lineage (where the member changes: a member never copies
    its own weights)."""
    return [
        Copy(member=b.member, step=b.start, donor=a.member, donor_step=a.end, kind=EventKind.EXPLOIT)
        for a, b in itertools.pairwise(segments)
        if a.member != b.member
    ]


def hparam_history(member: int, initial: Sequence[HParams], events: Sequence[Event]) -> list[tuple[int, HParams]]:
    """The hyperparameters ``member`` itself trained with, on its own step axis: ``(step, hparams from then on)``.

    Unlike ``lineage``, this does not follow copies back; it is what the member's own slot ran with.
    """
    history = [(0, dict(initial[member]))]
    for e in events:
        if e.member == member and e.new_hparams is not None and (e.kind in HPARAM_KINDS or e.kind in COPY_KINDS):
            history.append((e.step, dict(e.new_hparams)))
    return history


def training_spans(segments: Sequence[Segment]) -> list[tuple[int, int]]:
    """Where each segment lies on the axis of the training the final weights received: ``(from, to)`` in steps.

    Members' step counters drift apart when workers run at different speeds, so a copy can take weights trained less
    far than the copying member's own counter says; along this axis, the weight ages the store records with each
    copy, the lineage is contiguous.

    >>> training_spans([Segment(0, 0, 8, {}, age_start=0), Segment(1, 12, 16, {}, age_start=8)])
    [(0, 8), (8, 12)]
    """
    return [(s.age_start, s.age_start + s.end - s.start) for s in segments]


def ancestors(segments: Sequence[Segment]) -> list[int]:
    """The members along a lineage, oldest first, without repeats of consecutive entries."""
    out: list[int] = []
    for s in segments:
        if not out or out[-1] != s.member:
            out.append(s.member)
    return out
