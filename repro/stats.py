"""Statistics for comparing two arms (PBT vs random search) run on the same seeds.

Pure functions on plain numbers: means with Student-t intervals over seeds, paired differences by seed with an exact
sign-flip test, the probability of improvement and the interquartile mean with bootstrap intervals (as rliable computes
them, here with scipy), and how much of one arm's compute the other needs to reach its final result. No plotting, no
I/O.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

Curve = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its confidence interval; None where there are too few values to say."""

    mean: float | None
    low: float | None
    high: float | None
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def mean_interval(values: Iterable[float | None], confidence: float = 0.95) -> Interval:
    """Mean of the non-None values and a Student-t interval for it (sample std, ddof=1, over sqrt(n)).

    One value gives a mean without an interval; none gives nothing. Equal values give a zero-width interval
    rather than the NaN the t formula would make of 0/0-like cases.
    """
    xs = np.asarray([float(v) for v in values if v is not None], dtype=float)
    n = int(xs.size)
    if n == 0:
        return Interval(None, None, None, 0)
    mean = float(xs.mean())
    if n == 1:
        return Interval(mean, None, None, 1)
    std = float(xs.std(ddof=1))
    if std == 0.0:
        return Interval(mean, mean, mean, n)
    from scipy import stats  # here, not at the top: it takes seconds to import, and most commands need none of it

    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


@dataclass(frozen=True)
class PairedDifference:
    """Both arms' means and the paired interval of pbt - baseline over the seeds both arms have."""

    pbt: Interval
    baseline: Interval
    difference: Interval
    wins: int
    ties: int
    n: int
    per_seed: list[tuple[int, float, float]]

    def to_dict(self) -> dict:
        return {
            "pbt": self.pbt.to_dict(),
            "baseline": self.baseline.to_dict(),
            "difference": self.difference.to_dict(),
            "wins": self.wins,
            "ties": self.ties,
            "n": self.n,
            "per_seed": [list(row) for row in self.per_seed],
        }


def paired_difference(
    pbt: Mapping[int, float | None],
    baseline: Mapping[int, float | None],
    confidence: float = 0.95,
    higher: bool = True,
) -> PairedDifference:
    """Pair the arms by seed (the mapping keys) and give the t interval of the per-seed differences (``pbt`` −
    ``baseline``, raw); ``wins`` counts the seeds where ``pbt`` is better: higher, or lower where not ``higher``.

    Only seeds with a value in both arms count, so both means and the difference are over the same seeds. Pairing
    removes the seed-to-seed variation both arms share; the interval equals scipy's ttest_rel confidence interval.
    """
    seeds = sorted(s for s in pbt if pbt[s] is not None and baseline.get(s) is not None)
    per_seed = [(int(s), float(pbt[s]), float(baseline[s])) for s in seeds]  # type: ignore[arg-type]
    diffs = [p - b for _, p, b in per_seed]
    return PairedDifference(
        pbt=mean_interval([p for _, p, _ in per_seed], confidence),
        baseline=mean_interval([b for _, _, b in per_seed], confidence),
        difference=mean_interval(diffs, confidence),
        wins=sum(d > 0 if higher else d < 0 for d in diffs),
        ties=sum(d == 0 for d in diffs),
        n=len(per_seed),
        per_seed=per_seed,
    )


BOOTSTRAP_RESAMPLES = 10_000  # percentile-bootstrap resamples (rliable's default method; it draws 50,000)


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, confidence: float) -> tuple[float | None, float | None]:
    """A percentile-bootstrap interval of ``statistic`` (scipy.stats.bootstrap), each sample resampled on its own,
    seeded so a summary is the same every time it is made; None where a sample has fewer than two values.
    ``statistic(*samples, axis)`` is vectorized: it reduces along ``axis`` (all resamples at once, in numpy)."""
    if any(x.size < 2 for x in samples):
        return None, None
    from scipy import stats  # as in mean_interval

    found = stats.bootstrap(
        samples,
        statistic,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    return float(found.confidence_interval.low), float(found.confidence_interval.high)


def probability_of_improvement(
    a: Iterable[float | None], b: Iterable[float | None], confidence: float = 0.95
) -> Interval:
    """P(X > Y) for a run X of arm ``a`` and a run Y of arm ``b`` (ties count half), over every pair of their runs:
    the Mann–Whitney U statistic over n·m, as rliable's ``probability_of_improvement`` computes it for one task, with
    a percentile-bootstrap interval that resamples each arm's runs (rliable's stratified bootstrap, for one task).
    Computed with scipy; ``n`` is the number of runs of ``a``."""
    xs = np.asarray([float(v) for v in a if v is not None])
    ys = np.asarray([float(v) for v in b if v is not None])
    if not xs.size or not ys.size:
        return Interval(None, None, None, int(xs.size))

    def poi(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x, y = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]
        return ((x > y) + 0.5 * (x == y)).mean(axis=(-2, -1))

    low, high = _bootstrap((xs, ys), poi, confidence)
    return Interval(float(poi(xs, ys)), low, high, int(xs.size))


def interquartile_mean(values: Iterable[float | None], confidence: float = 0.95) -> Interval:
    """The mean of the middle half of the values: ``scipy.stats.trim_mean(x, 0.25)``, which cuts ⌊n/4⌋ values from
    each end (rliable's IQM on one task), with a percentile-bootstrap interval."""
    xs = np.asarray([float(v) for v in values if v is not None])
    if not xs.size:
        return Interval(None, None, None, 0)
    from scipy import stats  # as in mean_interval

    iqm = lambda x, axis=-1: stats.trim_mean(x, 0.25, axis=axis)  # noqa: E731
    low, high = _bootstrap((xs,), iqm, confidence)
    return Interval(float(iqm(xs)), low, high, int(xs.size))


def sign_flip_p(differences: Sequence[float]) -> float | None:
    """The exact two-sided sign-flip (paired permutation) test of the mean of paired differences being 0: the share
    of the 2^n ways of flipping their signs whose mean is at least as far from 0 as the observed one. With n pairs
    the smallest p it can give is 2 / 2^n (0.031 for n = 6, 0.25 for n = 3). None without differences."""
    d = np.asarray([float(x) for x in differences])
    if not d.size:
        return None
    observed = abs(d.mean())
    signs = np.array(np.meshgrid(*[[1.0, -1.0]] * d.size)).reshape(d.size, -1).T  # every sign pattern, once
    means = np.abs(signs @ d) / d.size
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def first_reach(curve: Curve, target: float) -> float | None:
    """The first compute at which best_so_far >= target in a curve of (compute, best_so_far) sorted by compute."""
    for compute, best in curve:
        if best >= target:
            return float(compute)
    return None


@dataclass(frozen=True)
class Speedup:
    """Per seed, the fraction of one arm's compute the other arm needs to reach that arm's final best.

    pbt_fraction: the fraction of random search's compute at which PBT's best-so-far first reaches random search's
    final best (0.4: PBT got there with 40% of the compute; None: PBT never got there). baseline_fraction is the
    reverse: the fraction of PBT's compute at which random search first reaches PBT's final best. The intervals
    are over the seeds where the arm got there; pbt_reached and baseline_reached count those seeds out of n.
    """

    pbt_fraction_per_seed: dict[int, float | None]
    baseline_fraction_per_seed: dict[int, float | None]
    pbt_fraction: Interval
    baseline_fraction: Interval
    pbt_reached: int
    baseline_reached: int
    n: int

    def to_dict(self) -> dict:
        return {
            "pbt_fraction_per_seed": dict(self.pbt_fraction_per_seed),
            "baseline_fraction_per_seed": dict(self.baseline_fraction_per_seed),
            "pbt_fraction": self.pbt_fraction.to_dict(),
            "baseline_fraction": self.baseline_fraction.to_dict(),
            "pbt_reached": self.pbt_reached,
            "baseline_reached": self.baseline_reached,
            "n": self.n,
        }


def _fraction(curve: Curve, other: Curve) -> float | None:
    """Fraction of other's final compute at which curve first reaches other's final best (None: never)."""
    budget, target = other[-1]
    reached = first_reach(curve, target)
    if reached is None or budget <= 0:
        return None
    return reached / float(budget)


def trains_faster(
    pbt_curves: Mapping[int, Curve], baseline_curves: Mapping[int, Curve], confidence: float = 0.95
) -> Speedup:
    """How much of random search's compute PBT needs to match random search's final best, and the reverse.

    Curves are (compute, best_so_far) points sorted by compute. Only seeds with a non-empty curve in both arms
    count; see Speedup for what the fractions mean.
    """
    seeds = sorted(s for s in pbt_curves if len(pbt_curves[s]) and len(baseline_curves.get(s) or ()))
    pbt_frac = {int(s): _fraction(pbt_curves[s], baseline_curves[s]) for s in seeds}
    base_frac = {int(s): _fraction(baseline_curves[s], pbt_curves[s]) for s in seeds}
    return Speedup(
        pbt_fraction_per_seed=pbt_frac,
        baseline_fraction_per_seed=base_frac,
        pbt_fraction=mean_interval(pbt_frac.values(), confidence),
        baseline_fraction=mean_interval(base_frac.values(), confidence),
        pbt_reached=sum(f is not None for f in pbt_frac.values()),
        baseline_reached=sum(f is not None for f in base_frac.values()),
        n=len(seeds),
    )


def fmt_interval(interval: Interval, digits: int = 4) -> str:
    """'mean [low, high]' with .{digits}g; '–' when there is no mean, just the mean when there is no interval."""
    if interval.mean is None:
        return "–"
    mean = f"{interval.mean:.{digits}g}"
    if interval.low is None or interval.high is None:
        return mean
    return f"{mean} [{interval.low:.{digits}g}, {interval.high:.{digits}g}]"


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation of the values present; no spread (None) from a single value."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return None, None
    return statistics.fmean(present), statistics.stdev(present) if len(present) > 1 else None
