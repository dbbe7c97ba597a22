"""Runs as ``compare`` reads them: one run directory's store in memory, the checks that decide whether runs may be
compared at all, and the curves and lineages drawn from them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pbt.controller import BASELINE_METHODS, REPLAY_METHODS
from pbt.diagnostics import Greediness, greediness
from pbt.lineage import Segment, lineage
from pbt.results import Results
from pbt.rows import EventKind, MemberRow, ScoreRow, oriented
from pbt.space import ConfigError
from pbt.store import StoreReader

SEARCH_KINDS = (EventKind.EXPLOIT, EventKind.EXPLOIT_HPARAMS, EventKind.EXPLORE)  # events only a search (PBT) makes


class Run(Results):
    """Everything ``compare`` needs from one run directory, read once by ``pbt.results.Results`` (which decides which
    members count and which is best), with how ``compare`` labels and pairs it."""

    @property
    def domain(self) -> str:
        return str(self.meta.get("domain", "?"))

    @property
    def label(self) -> str:
        """The method the run was stored as (``pbt``, ``random_search``, ``replay``, ...)."""
        return str(self.meta.get("method", "?"))

    @property
    def transfer(self) -> str:
        """What the run's exploits copy (``PBTConfig.transfer``)."""
        return str(self.meta["config"]["pbt"]["transfer"])

    @property
    def strategy(self) -> str:
        """How the run decided its copies and hyperparameters (``PBTConfig.strategy``)."""
        return str(self.meta["config"]["pbt"]["strategy"])

    @property
    def method(self) -> str:
        """The method as compared: the stored label, or for a PBT run its strategy (``pbt``, ``pb2``, ``fire``), with
        a copy ablation appended (``pbt-transfer-weights``), so that runs which decide or copy differently are never
        pooled into one arm."""
        if self.label != "pbt":
            return self.label
        method = self.strategy
        return f"{method}-transfer-{self.transfer}" if self.transfer != "both" else method

    @property
    def seed(self) -> int:
        return int(self.meta["seed"])

    @property
    def stop(self) -> dict[str, Any] | None:
        """Why the run stopped before its budget (``pbt.stopping``'s record), or None."""
        return self.meta.get("stop")

    @property
    def best_member(self) -> MemberRow | None:
        return self.best


def load_run(run_dir: Path | str) -> Run:
    """Read a run directory's store into memory (safe while another process is still writing it)."""
    return Run(run_dir)


def run_meta(run_dir: Path | str) -> dict[str, Any]:
    """Only a run directory's metadata (status, wall time, commit): cheap where ``load_run`` reads every score."""
    with StoreReader(run_dir) as store:
        return store.meta()


def domain_metric(run: Run) -> str:
    """What the run's score means, as recorded with it (``"score"`` for a store that does not say)."""
    return str(run.meta.get("metric") or "score")


def check_comparable(runs: Sequence[Run], allow_unequal: bool = False) -> bool:
    """Raise ``ConfigError`` for runs of different domains or modes (``PBTConfig.mode``), or of unequal planned compute
    unless ``allow_unequal``.

    Searches (PBT, random and grid search) must plan the same compute (population × steps per member). A ``replay``
    or ``final`` run (fresh members following a PBT run's schedule, as many as were asked for) is an extra arm held
    to the same steps per member. A baseline or replay whose events show an exploit or explore is refused: its label
    and what it did disagree.

    Returns:
        Whether every run planned the same compute.
    """
    if not runs:
        raise ConfigError("no runs to compare")
    domains = sorted({r.domain for r in runs})
    if len(domains) > 1:
        raise ConfigError(
            f"cannot compare runs of different domains ({', '.join(domains)}): their scores measure different things"
        )
    modes = {r.mode: r.run_dir for r in runs}
    if len(modes) > 1:
        raise ConfigError(
            f"cannot compare a run that maximises its score ({modes['max']}) with one that minimises it "
            f"({modes['min']}): they disagree on which score is better"
        )
    searches = [r for r in runs if r.label not in REPLAY_METHODS] or list(runs)
    for what, key, group in (
        ("compute (member-steps = population × steps per member)", "planned_steps", searches),
        ("steps per member", "budget_steps", runs),
    ):
        planned = {str(r.run_dir): r.compute[key] for r in group}
        if len(set(planned.values())) > 1 and not allow_unequal:
            plans = ", ".join(f"{d} plans {p}" for d, p in planned.items())
            raise ConfigError(f"unequal {what}: {plans}; pass --allow-unequal to compare anyway")
    equal = (
        len({r.compute["planned_steps"] for r in searches}) == 1 and len({r.compute["budget_steps"] for r in runs}) == 1
    )
    mislabelled = [
        f"{r.run_dir} ({r.label})"
        for r in runs
        if r.label in BASELINE_METHODS + REPLAY_METHODS and any(e.kind in SEARCH_KINDS for e in r.events)
    ]
    if mislabelled:
        raise ConfigError(
            f"{', '.join(mislabelled)}: labelled a baseline or a replay but its events show exploits "
            "or explores; its label and what it did disagree, so it is not compared"
        )
    over = over_trained(runs)
    if over and not allow_unequal:
        raise ConfigError(
            f"{'; '.join(over)}: more training than any member of the comparison ran; pass "
            "--allow-unequal to compare anyway"
        )
    return equal and not over


def spent_unequal(runs: Sequence[Run]) -> bool:
    """Whether a run stopped before its budget (a stop score or a time limit) and the searches spent unequal compute
    (member-steps) for it: they are then compared at the compute each spent, not at equal compute."""
    searches = [r for r in runs if r.label not in REPLAY_METHODS] or list(runs)
    return any(r.stop for r in runs) and len({r.compute["used_steps"] for r in searches}) > 1


def over_trained(runs: Sequence[Run]) -> list[str]:
    """Runs whose weights received more training than any member slot of the comparison trained: a member's weights
    may only be as old as the most training one member could do alone (per-member equal compute, not just equal
    totals)."""
    ceiling = max(r.compute.get("max_member_steps", 0) for r in runs)
    return [
        f"{r.run_dir}: weights trained for {r.compute['max_weight_age']} steps (ceiling {ceiling})"
        for r in runs
        if r.compute["max_weight_age"] > ceiling
    ]


# -- curves and lineages as data --------------------------------------------------------------------------------


def progress_curve(scores: Sequence[ScoreRow], mode: str) -> tuple[list[int], list[float], list[float]]:
    """Best-so-far (the highest score so far; the lowest under ``mode`` min) and population-median score against
    compute, from a run's scores in recorded order.

    Compute at a score is the sum over members of the latest step each had reported by then; the median is over
    each member's latest score.
    """
    latest_step: dict[int, int] = {}
    latest_score: dict[int, float] = {}
    xs: list[int] = []
    best: list[float] = []
    median: list[float] = []
    for s in sorted(scores, key=lambda s: (s.time, s.member, s.step)):
        latest_step[s.member] = max(latest_step.get(s.member, 0), s.step)
        latest_score[s.member] = s.score
        xs.append(sum(latest_step.values()))
        best.append(max(s.score, best[-1], key=lambda v: oriented(v, mode)) if best else s.score)
        median.append(statistics.median(latest_score.values()))
    return xs, best, median


def best_lineage(run: Run) -> tuple[MemberRow, list[Segment]] | None:
    """The final best member of ``run`` and the segments of its lineage (None when no member has a score)."""
    best = run.best_member
    if best is None:
        return None
    return best, lineage(best.id, run.meta["initial_hparams"], run.events, {m.id: m.step for m in run.members})


def run_greediness(run: Run) -> Greediness | None:
    """The greediness diagnostics of a PBT run (``pbt.diagnostics``); None for a baseline or a replay, which copy
    nothing."""
    if run.method in BASELINE_METHODS + REPLAY_METHODS:
        return None
    ready_every = int(run.meta["config"]["pbt"]["ready_every"])
    return greediness(run.meta["initial_hparams"], run.events, ready_every, max(m.step for m in run.members))
