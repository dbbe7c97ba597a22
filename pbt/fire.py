"""FIRE PBT (Dalibard & Jaderberg 2021, "Faster Improvement Rate Population Based Training", arXiv 2109.13800),
chosen with ``PBTConfig.strategy = "fire"``. PBT judges a member by its score now, which rewards hyperparameters that
pay off at once (a learning rate dropped early) over those that pay off later. FIRE PBT keeps a greedy
sub-population for the score that matters, and judges a second one by how fast its weights *improve* when trained on.

The population's slots, by member id (``split``):
- **greedy** members (the first ``n1``) train and exploit among themselves as in PBT (``PBTConfig.exploit``, then the
  explore rule), judged on their score;
- **parent** members (the next ``n2``) train with hyperparameters of their own and exploit among themselves on a
  fitness of improvement rate (below), by truncation;
- **evaluators** (the last ``PBTConfig.fire_evaluators``) measure that rate. An evaluator takes a parent's weights and
  trains them with the hyperparameters of the best greedy member (its *child*), recording its score curve. When that
  curve beats the child's own (the child's scores since it last copied weights), the child adopts the evaluator's
  weights, keeping its hyperparameters: weights prepared by the parents' long-horizon hyperparameters thus reach the
  greedy members, which report the result.

The rules, read from the paper and from one reimplementation (PBT-Zoo, ``algo/firepbt.py``, Chebykin et al. 2025; the
paper has no official code):
- curves are compared where they overlap in score: the later-starting curve is lined up with the point where the
  other first reaches its starting score (``overlap``), on curves smoothed by a centred moving average of 3 points,
  ends kept (``smooth``; the reimplementation smooths with a Gaussian process);
- the best-score difference of curve a over b is max(a) − max(b) over the overlap; without an overlap it is 0 when a
  is below b, and when a is entirely above b it is the difference with a lowered to start where b starts, at least 0
  (the reimplementation searches ten such shifts);
- a parent's fitness is the sum of its evaluator's best-score differences over the evaluators of the other parents
  (only parents being evaluated have one); the bottom ``truncation_fraction`` of them (at least one) copy a member
  drawn from the top as many, then explore;
- an evaluator succeeds when its best-score difference over its child is positive and a one-sided binomial test that
  its points beat the child's over the overlap gives p < ``fire_p_value`` (0.01);
- an evaluator stops when it succeeded, when its parent or its child copied weights since it started, when it has run
  ``fire_max_eval_steps`` without its curve overlapping the child's, or when the binomial test's p exceeds
  ``fire_p_value + max(0, 1 − T / fire_max_eval_steps)`` after T steps. A stopped evaluator is given at once the
  parent that has waited longest since it was last evaluated or copied weights (not one another evaluator holds), and
  the hyperparameters of the greedy member with the best score that did not just copy another.

Every slot trains every step, evaluators included, so a FIRE run spends exactly the member-steps of a PBT or random
search run with the same population; every copy takes a member's state at the copier's step, so every member's
weights keep exactly the training of its step. The state FIRE needs (assignments, curves, copies) is derived from the
store's events and scores (``History``), so a killed serial run resumes to the same result. Evaluators decide after
the other members at the same step (``decides_last``), so an evaluator that succeeded at step t is still the weights
its child adopts at t.

The best member of a run is chosen, as for every strategy, by the final score over the whole population.

``decide`` is FIRE's ready decision, made from Algorithm 1's steps (``pbt.algorithm``: the exploit rule, the copy, the
explore step); the controller calls it in place of ``pbt.algorithm.ready_decision``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pbt.algorithm import choose_donor, copy_event, copy_member, explore_member
from pbt.config import PBTConfig
from pbt.mutations import ExploreFn
from pbt.rows import Event, MemberRow, oriented

OP = "fire"  # the key of a FIRE copy's ``ops``: what the copy was (EVALUATE, ADOPT or a sub-population's exploit)
EVALUATE, ADOPT, EXPLOIT = "evaluate", "adopt", "exploit"
Curve = tuple[tuple[int, float], ...]  # (step, score) in ascending steps


@dataclass(frozen=True)
class Split:
    """Which slots are greedy members, parents and evaluators (member ids)."""

    greedy: range
    parents: range
    evaluators: range

    def role(self, member: int) -> str:
        return "greedy" if member in self.greedy else "parent" if member in self.parents else "evaluator"


def split(cfg: PBTConfig) -> Split:
    """The evaluators are the last ``fire_evaluators`` slots; the others are halved, the greedy half taking an odd
    one (a population of 8 with 2 evaluators: 3 greedy, 3 parents, as in PBT-Zoo's population-8 setting)."""
    n = cfg.population
    rest = n - cfg.fire_evaluators
    n1 = (rest + 1) // 2
    return Split(greedy=range(n1), parents=range(n1, rest), evaluators=range(rest, n))


def decides_last(member: int, cfg: PBTConfig) -> bool:
    """Whether ``member`` is an evaluator, whose ready decision waits for the other members' at the same step."""
    return cfg.strategy == "fire" and member in split(cfg).evaluators


def max_eval_steps(cfg: PBTConfig) -> int:
    return cfg.fire_max_eval_steps or 3 * cfg.ready_every


@dataclass(frozen=True)
class Assignment:
    """An evaluator's current task: the parent whose weights it took, the greedy member whose hyperparameters it
    trains them with, and the step it started at."""

    evaluator: int
    parent: int
    child: int
    start: int


@dataclass(frozen=True)
class History:
    """What FIRE decides from at step t, read from the store (by the controller): every copy of weights up to t (in
    the order made) and every member's scores up to t, which its curves give as fitnesses under the run's ``mode``
    (``pbt.rows.oriented``: higher better)."""

    copies: tuple[Event, ...] = ()
    scores: dict[int, Curve] = field(default_factory=dict)
    mode: str = "max"

    def fitness(self, member: int) -> Curve:
        return tuple((step, oriented(score, self.mode)) for step, score in self.scores.get(member, ()))

    def assignments(self) -> dict[int, Assignment]:
        """Each evaluator's latest assignment."""
        found = {}
        for e in self.copies:
            if (e.ops or {}).get(OP) == EVALUATE:
                found[e.member] = Assignment(e.member, int(e.donor), int(e.ops["child"]), e.step)
        return found

    def last_copy(self, member: int) -> Event | None:
        return next((e for e in reversed(self.copies) if e.member == member), None)

    def copied_since(self, member: int, step: int) -> bool:
        """Whether ``member``'s weights were replaced at or after ``step`` (by a copy other than its assignment)."""
        return any(e.member == member and e.step >= step and (e.ops or {}).get(OP) != EVALUATE for e in self.copies)

    def curve(self, member: int) -> Curve:
        """``member``'s scores since its weights were last copied (an evaluator's: since its assignment); a member
        that adopted an evaluator's weights continues that evaluator's curve."""
        last = self.last_copy(member)
        own = self.fitness(member)
        if last is None:
            return own
        after = tuple(p for p in own if p[0] > last.step)
        if (last.ops or {}).get(OP) == ADOPT and last.donor is not None:
            before = self.fitness(int(last.donor))
            start = self.assignments_before(int(last.donor), last.step)
            return tuple(p for p in before if start < p[0] <= last.step) + after
        return after

    def last_touched(self, parent: int, now: int) -> int:
        """The last step at which ``parent`` was being evaluated (an evaluation runs until its evaluator's next
        assignment, or ``now``) or copied weights; -1 if never, so a parent never evaluated waits longest."""
        steps = [e.step for e in self.copies if e.member == parent]
        for i, e in enumerate(self.copies):
            if (e.ops or {}).get(OP) == EVALUATE and e.donor == parent:
                ended = next(
                    (
                        later.step
                        for later in self.copies[i + 1 :]
                        if later.member == e.member and (later.ops or {}).get(OP) == EVALUATE
                    ),
                    now,
                )
                steps.append(ended)
        return max(steps, default=-1)

    def assignments_before(self, evaluator: int, step: int) -> int:
        """The start of ``evaluator``'s assignment in force at ``step``."""
        starts = [
            e.step for e in self.copies if e.member == evaluator and (e.ops or {}).get(OP) == EVALUATE and e.step < step
        ]
        return max(starts, default=0)


def smooth(values: Sequence[float]) -> list[float]:
    """A centred moving average over 3 points; the first and last stay as they are (averaged with one neighbour, a
    rising curve's start would read higher than it was, and curves would be lined up at the wrong point)."""
    n = len(values)
    return [float(v) if i in (0, n - 1) else (values[i - 1] + v + values[i + 1]) / 3 for i, v in enumerate(values)]


def overlap(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, int] | None:
    """Where smoothed curves ``a`` and ``b`` overlap in score: (start in a, start in b, length), the curve that
    starts lower entering where it first reaches the other's start; None when it never does."""
    if not a or not b:
        return None
    if a[0] < b[0]:
        i = next((k for k, v in enumerate(a) if v >= b[0]), None)
        start = None if i is None else (i, 0)
    else:
        j = next((k for k, v in enumerate(b) if v >= a[0]), None)
        start = None if j is None else (0, j)
    if start is None:
        return None
    return start[0], start[1], min(len(a) - start[0], len(b) - start[1])


def best_score_difference(a: Curve, b: Curve) -> float:
    """How much better curve ``a`` gets than ``b`` from the same score (see the module's rules)."""
    va, vb = [s for _, s in a], [s for _, s in b]
    if len(va) < 2 or not vb:
        return 0.0
    found = overlap(smooth(va), smooth(vb))
    if found is not None:
        i, j, n = found
        return max(va[i : i + n]) - max(vb[j : j + n])
    if min(va) <= max(vb):  # a is below b where they do not overlap
        return 0.0
    n = min(len(va), len(vb))  # a entirely above b: compare its progress from b's start
    lowered = [v - (va[0] - vb[0]) for v in va[:n]]
    return max(0.0, max(lowered) - max(vb[:n]))


def binomial_p(a: Curve, b: Curve) -> float:
    """One-sided binomial test that ``a``'s points beat ``b``'s over their overlap (p-value; 2 when a is entirely
    below b, 0 when entirely above)."""
    va, vb = [s for _, s in a], [s for _, s in b]
    if not va or not vb:
        return 1.0
    found = overlap(smooth(va), smooth(vb))
    if found is None:
        if min(va) > max(vb):
            return 0.0
        if max(va) < min(vb):
            return 2.0
        found = (0, 0, min(len(va), len(vb)))
    i, j, n = found
    wins = sum(x > y for x, y in zip(va[i : i + n], vb[j : j + n]))
    # P(X >= wins) for X ~ Binomial(n, 1/2): scipy.stats.binomtest(wins, n, alternative="greater"), exactly
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n if n else 1.0


def succeeded(assignment: Assignment, history: History, cfg: PBTConfig) -> bool:
    mine, child = history.curve(assignment.evaluator), history.curve(assignment.child)
    return best_score_difference(mine, child) > 0 and binomial_p(mine, child) < cfg.fire_p_value


def stop_reason(assignment: Assignment, step: int, history: History, cfg: PBTConfig) -> str | None:
    """Why ``assignment`` ends at ``step`` (None: it goes on)."""
    if history.copied_since(assignment.child, assignment.start + 1):
        last = history.last_copy(assignment.child)
        adopted = last is not None and (last.ops or {}).get(OP) == ADOPT and last.donor == assignment.evaluator
        return "its child adopted its weights" if adopted else "its child copied other weights"
    if history.copied_since(assignment.parent, assignment.start + 1):
        return "its parent copied other weights"
    mine, child = history.curve(assignment.evaluator), history.curve(assignment.child)
    elapsed, limit = step - assignment.start, max_eval_steps(cfg)
    overlapping = overlap(smooth([s for _, s in mine]), smooth([s for _, s in child])) is not None
    if not overlapping:
        return f"no overlap with its child's curve after {elapsed} steps" if elapsed >= limit else None
    p = binomial_p(mine, child)
    if p > cfg.fire_p_value + max(0.0, 1.0 - elapsed / limit):
        return f"binomial p {p:.3g} after {elapsed} steps"
    return None


def parent_fitness(history: History, parents: Sequence[int], assignments: dict[int, Assignment]) -> dict[int, float]:
    """The fitness of each parent being evaluated: its evaluator's summed best-score differences over the others'."""
    curves = {
        a.parent: history.curve(a.evaluator)
        for a in assignments.values()
        if a.parent in parents and not history.copied_since(a.parent, a.start + 1)
    }
    return {p: sum(best_score_difference(c, other) for q, other in curves.items() if q != p) for p, c in curves.items()}


def decide(
    me: MemberRow,
    members: list[MemberRow],
    space: dict,
    cfg: PBTConfig,
    history: History,
    rng: random.Random,
    explore_fn: ExploreFn | None = None,
) -> tuple[MemberRow, list[Event]]:
    """FIRE's ready decision for ``me`` at its step, against the population as it sees it (``members``); a copier
    explores within ``space`` (the mutation space), then through the task's ``explore_fn``."""
    roles = split(cfg)
    role = roles.role(me.id)
    population = [me if m.id == me.id else m for m in members]

    def exploit_from(donor: MemberRow) -> tuple[MemberRow, list[Event]]:
        event = replace(copy_event(me, donor, cfg.transfer), ops={OP: EXPLOIT})
        copied = copy_member(me, donor, cfg.transfer)
        if cfg.explore == "none":
            return copied, [event]
        explored, explore_event = explore_member(copied, space, cfg, rng, explore_fn=explore_fn)
        return explored, [event, explore_event]

    if role == "greedy":
        own = [m for m in population if m.id in roles.greedy]
        donor = choose_donor(me, own, cfg, rng)
        if donor is not None:
            return exploit_from(population[donor])
        winners = [
            a
            for a in history.assignments().values()
            if a.child == me.id
            and a.start < me.step
            and not history.copied_since(me.id, a.start + 1)
            and succeeded(a, history, cfg)
        ]
        winners = [population[a.evaluator] for a in winners if population[a.evaluator].checkpoint is not None]
        if not winners:
            return me, []
        evaluator = max(
            winners, key=lambda m: (oriented(m.score, cfg.mode) if m.score is not None else -math.inf, -m.id)
        )
        event = replace(
            copy_event(me, evaluator, "weights"),
            ops={OP: ADOPT},
            message=f"fire: adopted the weights of evaluator {evaluator.id}",
        )
        return copy_member(me, evaluator, "weights"), [event]

    if role == "parent":
        fitness = parent_fitness(history, roles.parents, history.assignments())
        if me.id not in fitness or len(fitness) < 2:
            return me, []
        tie_break = {p: rng.random() for p in sorted(fitness)}
        ranked = sorted(fitness, key=lambda p: (fitness[p], tie_break[p]))  # worst first
        cut = max(1, int(len(ranked) * cfg.truncation_fraction))
        if me.id not in ranked[:cut]:
            return me, []
        donor = population[rng.choice(ranked[-cut:])]
        if donor.id == me.id or donor.checkpoint is None:
            return me, []
        return exploit_from(donor)

    current = history.assignments().get(me.id)
    reason = "first assignment" if current is None else stop_reason(current, me.step, history, cfg)
    if reason is None:
        return me, []
    held = {a.parent for e, a in history.assignments().items() if e != me.id}
    free = [population[p] for p in roles.parents if p not in held and population[p].checkpoint is not None]
    greedy = [
        m
        for m in population
        if m.id in roles.greedy
        and m.score is not None
        and not any(e.member == m.id and e.step == me.step and (e.ops or {}).get(OP) == EXPLOIT for e in history.copies)
    ]
    if not free or not greedy:
        return me, []

    parent = max(free, key=lambda p: (me.step - history.last_touched(p.id, me.step), -p.id))
    child = max(greedy, key=lambda m: (oriented(m.score, cfg.mode), -m.id))
    event = replace(
        copy_event(me, parent, "both"),
        new_hparams=dict(child.hparams),
        ops={OP: EVALUATE, "child": child.id},
        message=f"fire: evaluates parent {parent.id} with the hyperparameters of member {child.id} ({reason})",
    )
    return replace(copy_member(me, parent, "both"), hparams=dict(child.hparams)), [event]
