"""Greediness diagnostics: how fast exploitation narrows a population, rebuilt from a run's event records.

Every member's weights descend from one *founding* member: the member whose fresh start they go back to through
copies. Only copies of weights are followed (``COPY_KINDS``: exploits and failure replacements); a change of
hyperparameters alone leaves the weights' ancestry as it was. Three views of the same events:

- ``lineages_alive``: how many founders still have descendants, over time, and ``coalescence_step``: the first step
  from which on every member descends from one founder (None if that never happens);
- ``hparam_spread``: the population's min, median and max of each numeric hyperparameter at the start of each
  ready round in which it may have changed;
- ``replaced_per_round``: the fraction of the population whose weights were replaced in each ready round that had a
  copy.

Every list grows with the number of events, never with the number of steps: a stored run whose task claimed far more
steps than it took (a million on a budget of 64) is read, and drawn, as fast as any other.

Time axis: each event's own step, which is the step of the member that copied or explored. In a serial run all
members' counters agree, so this is the population's common clock. In an asynchronous run they differ: "at step t"
then means each member as it was at its own step t, not the population at one moment. Ready round k covers the
steps from k·ready_every up to (k+1)·ready_every, where a member's k-th ready decision falls: a task that overshoots
its interval slightly (an RL rollout that ends past the boundary) moves its decision later within the round.

Pure functions, no plotting: ``repro.compare`` draws what these return.

>>> from pbt.store import Event
>>> events = [Event(member=1, step=4, kind="exploit", donor=0, donor_step=4, new_hparams={"lr": 0.1})]
>>> g = greediness([{"lr": 0.1}, {"lr": 0.5}], events, ready_every=4, end_step=12)
>>> g.lineages_alive, g.coalescence_step, g.replaced
([(0, 2), (4, 1)], 4, [(4, 0.5)])
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pbt.lineage import COPY_KINDS, hparam_history
from pbt.rows import Event, EventKind
from pbt.space import HParams

Spread = tuple[int, float, float, float]  # (step, min, median, max) over the population


@dataclass(frozen=True)
class Greediness:
    """The three diagnostics of one run (see the module docstring); steps are the copier's own steps."""

    population: int
    ready_every: int  # the length of a ready round, in steps
    lineages_alive: list[tuple[int, int]]  # (step, founders with descendants from then on), at 0 and at each change
    coalescence_step: int | None
    replaced: list[tuple[int, float]]  # (first step of the ready round, copies in it / population), rounds with one
    spread: dict[str, list[Spread]]  # per numeric hyperparameter, at step 0, each ready round with events, the end

    @property
    def lineages_at_end(self) -> int:
        return self.lineages_alive[-1][1]


def _at(history: Sequence[tuple[int, object]], step: int) -> object:
    """The value a member's step-ordered history holds at ``step``: its last entry at or before it."""
    return next(value for at, value in reversed(history) if at <= step)


def founder_histories(population: int, events: Sequence[Event]) -> dict[int, list[tuple[int, int | None]]]:
    """Each member's founder as a function of its own step: ``(step, founder from then on)``, None once dropped.

    A copy takes the donor's weights as they were at ``donor_step``, so the copier's founder is the donor's founder
    at that step, as far as the events recorded before the copy say: a donor that copies at the very step it is
    copied at hands on its new weights only if its own copy was recorded first (the order the store keeps)."""
    histories: dict[int, list[tuple[int, int | None]]] = {m: [(0, m)] for m in range(population)}
    for e in events:
        if e.kind in COPY_KINDS and e.donor is not None:
            founder = _at(histories[e.donor], e.step if e.donor_step is None else e.donor_step)
            histories[e.member].append((e.step, founder))  # type: ignore[arg-type]
        elif e.kind == EventKind.DROP:
            histories[e.member].append((e.step, None))
    return histories


def lineages_alive(population: int, events: Sequence[Event]) -> list[tuple[int, int]]:
    """How many distinct founders the members' weights descend from, at step 0 and wherever that number changes."""
    histories = founder_histories(population, events).values()
    alive: list[tuple[int, int]] = []
    for step in sorted({at for history in histories for at, _ in history}):
        count = len({_at(history, step) for history in histories} - {None})
        if not alive or alive[-1][1] != count:
            alive.append((step, count))
    return alive


def coalescence_step(alive: Sequence[tuple[int, int]]) -> int | None:
    """The first step from which on every member descends from one founder; None if the run ends with more.

    Only the last change counts: in an asynchronous run a member that is behind can copy weights from a donor's past,
    bringing back a founder the others had already lost at that step."""
    return alive[-1][0] if alive and alive[-1][1] == 1 else None


def replaced_per_round(population: int, events: Sequence[Event], ready_every: int) -> list[tuple[int, float]]:
    """Per ready round with a copy, in order: its first step and the fraction of the population that took another
    member's weights in it. A round without one is left out (its fraction is 0), so the list never grows with the
    number of rounds."""
    counts: dict[int, int] = {}
    for e in events:
        if e.kind in COPY_KINDS and e.donor is not None:
            counts[e.step // ready_every] = counts.get(e.step // ready_every, 0) + 1
    return [(k * ready_every, counts[k] / population) for k in sorted(counts)]


def hparam_spread(initial: Sequence[HParams], events: Sequence[Event], steps: Sequence[int]) -> dict[str, list[Spread]]:
    """The min, median and max over the population of each numeric hyperparameter at each of ``steps``: what each
    member trains with from its own step on (after its decision at that step). Dropped members are left out;
    categorical hyperparameters have no spread and are skipped."""
    histories = {m: hparam_history(m, initial, events) for m in range(len(initial))}
    dropped = {e.member: e.step for e in events if e.kind == EventKind.DROP}
    names = sorted(initial[0]) if initial else []
    spread: dict[str, list[Spread]] = {}
    for name in names:
        values = [h[name] for history in histories.values() for _, h in history]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        rows: list[Spread] = []
        for step in steps:
            now = [
                float(_at(history, step)[name])
                for m, history in histories.items()  # type: ignore[index]
                if dropped.get(m, step + 1) > step
            ]
            if now:
                rows.append((step, min(now), statistics.median(now), max(now)))
        spread[name] = rows
    return spread


def greediness(initial: Sequence[HParams], events: Sequence[Event], ready_every: int, end_step: int) -> Greediness:
    """All three diagnostics of a run.

    Args:
        initial: The initial hyperparameters of members 0..N-1 (the run's ``initial_hparams`` metadata).
        events: The run's events in recorded order (``Store.events()``).
        ready_every: The run's ready interval in steps (``PBTConfig.ready_every``): the length of a round.
        end_step: The last step of the run (the largest member step).
    """
    population = len(initial)
    alive = lineages_alive(population, events)
    # the spread at each round start that follows an event; at any other round start it equals the row before it
    rounds = {-(-e.step // ready_every) * ready_every for e in events}
    return Greediness(
        population=population,
        ready_every=ready_every,
        lineages_alive=alive,
        coalescence_step=coalescence_step(alive),
        replaced=replaced_per_round(population, events, ready_every),
        spread=hparam_spread(initial, events, sorted({0, *(r for r in rounds if r < end_step), end_step})),
    )
