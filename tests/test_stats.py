"""Tests for repro.stats on hand-made numbers, checked against scipy where scipy computes the same thing."""

import json

import numpy as np
import pytest
from scipy import stats as sps

from repro.stats import Interval, first_reach, fmt_interval, mean_interval, paired_difference, trains_faster


def test_mean_interval_matches_scipy_t_interval():
    values = [1.0, 2.5, 4.0, 3.0]
    got = mean_interval(values)
    low, high = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert got.n == 4
    assert got.mean == pytest.approx(2.625)
    assert got.low == pytest.approx(low)
    assert got.high == pytest.approx(high)


def test_mean_interval_other_confidence_is_narrower():
    values = [1.0, 2.5, 4.0, 3.0]
    low, high = sps.t.interval(0.8, 3, loc=np.mean(values), scale=sps.sem(values))
    got = mean_interval(values, confidence=0.8)
    assert (got.low, got.high) == pytest.approx((low, high))
    assert got.high - got.low < mean_interval(values).high - mean_interval(values).low


def test_mean_interval_ignores_none():
    assert mean_interval([1.0, None, 2.5, 4.0, None, 3.0]) == mean_interval([1.0, 2.5, 4.0, 3.0])


def test_one_value_gives_no_interval_and_none_gives_nothing():
    assert mean_interval([7.0]) == Interval(7.0, None, None, 1)
    assert mean_interval([None, 7.0]) == Interval(7.0, None, None, 1)
    assert mean_interval([]) == Interval(None, None, None, 0)
    assert mean_interval([None, None]) == Interval(None, None, None, 0)


def test_identical_values_give_zero_width_interval():
    assert mean_interval([3.5, 3.5, 3.5]) == Interval(3.5, 3.5, 3.5, 3)


def test_paired_difference_matches_ttest_rel():
    pbt = {0: 10.0, 1: 12.5, 2: 11.0}
    base = {0: 8.0, 1: 11.0, 2: 10.5}
    got = paired_difference(pbt, base)
    seeds = [0, 1, 2]
    ci = sps.ttest_rel([pbt[s] for s in seeds], [base[s] for s in seeds]).confidence_interval(0.95)
    assert got.n == 3
    assert got.difference.mean == pytest.approx((2.0 + 1.5 + 0.5) / 3)
    assert (got.difference.low, got.difference.high) == pytest.approx((ci.low, ci.high))
    assert got.pbt == mean_interval([10.0, 12.5, 11.0])
    assert got.baseline == mean_interval([8.0, 11.0, 10.5])
    assert got.per_seed == [(0, 10.0, 8.0), (1, 12.5, 11.0), (2, 11.0, 10.5)]


def test_paired_interval_is_narrower_than_unpaired_for_correlated_seeds():
    # Seeds vary a lot, the difference hardly: pairing must see through the shared variation.
    got = paired_difference({0: 1.0, 1: 11.0, 2: 21.0}, {0: 0.0, 1: 10.1, 2: 19.9})
    assert got.difference.low > 0
    assert got.pbt.low < got.baseline.high


def test_wins_and_ties():
    got = paired_difference({0: 2.0, 1: 1.0, 2: 3.0, 3: 5.0}, {0: 1.0, 1: 1.0, 2: 4.0, 3: 4.5})
    assert (got.wins, got.ties, got.n) == (2, 1, 4)


def test_missing_or_none_seed_is_left_out_of_the_pairs():
    pbt = {0: 10.0, 1: 12.5, 2: 11.0, 3: 99.0, 4: None}
    base = {0: 8.0, 1: 11.0, 2: 10.5, 4: 1.0, 5: -99.0}
    got = paired_difference(pbt, base)
    assert got.n == 3
    assert [s for s, _, _ in got.per_seed] == [0, 1, 2]
    assert got == paired_difference({0: 10.0, 1: 12.5, 2: 11.0}, {0: 8.0, 1: 11.0, 2: 10.5})
    assert got.pbt.mean == pytest.approx(11.166666666)  # seed 3 is not in the PBT mean


def test_pairs_by_seed_key_not_position():
    pbt = {0: 10.0, 1: 12.5, 2: 11.0}
    base_shuffled = {2: 10.5, 0: 8.0, 1: 11.0}
    got = paired_difference(pbt, base_shuffled)
    assert got.per_seed == [(0, 10.0, 8.0), (1, 12.5, 11.0), (2, 11.0, 10.5)]
    assert got == paired_difference(dict(reversed(list(pbt.items()))), {0: 8.0, 1: 11.0, 2: 10.5})
    assert got.wins == 3


def test_paired_difference_to_dict_is_json_ready():
    d = paired_difference({0: 2.0, 1: 3.0}, {0: 1.0, 1: 1.5}).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["difference"]["mean"] == pytest.approx(1.25)
    assert d["per_seed"] == [[0, 2.0, 1.0], [1, 3.0, 1.5]]


def test_first_reach():
    curve = [(10.0, 1.0), (20.0, 5.0), (40.0, 10.0), (80.0, 12.0)]
    assert first_reach(curve, 10.0) == 40.0  # >= counts, the first such point
    assert first_reach(curve, 6.0) == 40.0
    assert first_reach(curve, 0.5) == 10.0
    assert first_reach(curve, 12.5) is None
    assert first_reach([], 1.0) is None


def test_trains_faster_fractions_both_ways():
    base = {
        0: [(25.0, 4.0), (50.0, 8.0), (100.0, 10.0)],
        1: [(50.0, 5.0), (100.0, 20.0)],
        2: [(50.0, 3.0), (200.0, 6.0)],
    }
    pbt = {
        0: [(20.0, 5.0), (40.0, 10.0), (100.0, 11.0)],  # reaches 10 at 40 of 100 -> 0.4
        1: [(50.0, 8.0), (100.0, 9.0)],  # never reaches 20 -> None
        2: [(30.0, 6.0), (100.0, 7.0)],  # reaches 6 at 30 of 200 -> 0.15
        3: [(10.0, 1.0)],
    }  # no baseline: not a pair
    got = trains_faster(pbt, base)
    assert got.n == 3
    assert got.pbt_fraction_per_seed == {0: 0.4, 1: None, 2: 0.15}
    assert got.pbt_reached == 2
    assert got.pbt_fraction == mean_interval([0.4, 0.15])
    # Reverse: baseline reaching PBT's final best (11, 9, 7) within PBT's final compute (100 each).
    assert got.baseline_fraction_per_seed == {0: None, 1: 1.0, 2: None}
    assert got.baseline_reached == 1
    assert got.baseline_fraction == Interval(1.0, None, None, 1)


def test_trains_faster_reverse_fraction():
    base = {7: [(10.0, 2.0), (30.0, 9.0), (60.0, 9.5)]}
    pbt = {7: [(40.0, 9.0), (120.0, 9.0)]}  # PBT's best 9.0, baseline gets there at 30 of PBT's 120
    got = trains_faster(pbt, base)
    assert got.baseline_fraction_per_seed == {7: 0.25}
    assert got.pbt_fraction_per_seed == {7: None}
    assert got.pbt_fraction == Interval(None, None, None, 0)
    d = got.to_dict()
    assert json.loads(json.dumps(d))["baseline_fraction_per_seed"] == {"7": 0.25}


def test_fmt_interval():
    assert fmt_interval(Interval(29.913, 27.1, 32.7, 5)) == "29.91 [27.1, 32.7]"
    assert fmt_interval(Interval(29.913, 27.1, 32.7, 5), digits=2) == "30 [27, 33]"
    assert fmt_interval(Interval(0.123456, None, None, 1)) == "0.1235"
    assert fmt_interval(Interval(None, None, None, 0)) == "–"
    # std 1.25, sem 0.625, t(0.975, 3) = 3.182: 2.625 +- 1.989
    assert fmt_interval(mean_interval([1.0, 2.5, 4.0, 3.0]), digits=3) == "2.62 [0.636, 4.61]"


def test_probability_of_improvement_is_mann_whitney_u_over_the_pairs_with_a_bootstrap_interval() -> None:
    from scipy.stats import mannwhitneyu

    from repro.stats import probability_of_improvement

    x, y = [1.0, 2.0, 3.0, 5.0], [0.0, 2.0, 4.0]
    found = probability_of_improvement(x, y)
    # by hand: 1 beats 0; 2 beats 0, ties 2; 3 beats 0, 2; 5 beats all three: 1 + 1.5 + 2 + 3 = 7.5 of 12 pairs
    assert found.mean == pytest.approx(7.5 / 12) == pytest.approx(mannwhitneyu(x, y).statistic / 12)
    assert 0.0 <= found.low <= found.mean <= found.high <= 1.0 and found.n == 4
    assert probability_of_improvement([2.0, 3.0], [0.0, 1.0]) == probability_of_improvement([2.0, 3.0], [0.0, 1.0])
    assert probability_of_improvement([2.0, 3.0], [0.0, 1.0]).mean == 1.0
    assert probability_of_improvement([1.0], [0.0]).low is None  # one run per arm: nothing to resample


def test_the_interquartile_mean_cuts_a_quarter_from_each_end() -> None:
    from scipy.stats import trim_mean

    from repro.stats import interquartile_mean

    assert interquartile_mean(range(1, 9)).mean == 4.5  # 3, 4, 5, 6
    six = [10.0, 1.0, 2.0, 3.0, 4.0, -50.0]  # one cut from each end: -50 and 10
    assert interquartile_mean(six).mean == pytest.approx(2.5) == pytest.approx(trim_mean(six, 0.25))
    found = interquartile_mean(six)
    assert found.low <= found.mean <= found.high


@pytest.mark.parametrize(
    "differences", [[1.0] * 6, [1.0, -1.0, 2.0, 0.5, 3.0, 1.0], [0.3, -0.2, 0.1], [2.0, -2.0, 0.0, 1.0]]
)
def test_the_sign_flip_test_is_the_exact_paired_permutation_test(differences: list[float]) -> None:
    import numpy as np
    from scipy.stats import permutation_test

    from repro.stats import sign_flip_p

    reference = permutation_test(
        (np.asarray(differences),), np.mean, permutation_type="samples", n_resamples=np.inf, alternative="two-sided"
    ).pvalue
    assert sign_flip_p(differences) == pytest.approx(reference)


def test_with_six_seeds_the_sign_flip_test_cannot_go_below_2_in_64() -> None:
    from repro.stats import sign_flip_p

    assert sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == 2 / 64
    assert sign_flip_p([0.1, 0.2, 0.3]) == 2 / 8 and sign_flip_p([]) is None
