"""The frequentist checks of a bisection result: intervals, exact tests, second change."""

from __future__ import annotations

import pytest

from harness.bisect.model import posterior
from harness.bisect.summary import counts, fisher_greater, second_change, summarize


def test_clopper_pearson_bounds() -> None:
    zero = counts(10, 0)
    assert zero.low == 0.0
    assert zero.high == pytest.approx(1 - 0.025 ** (1 / 10))
    full = counts(10, 10)
    assert full.high == 1.0 and full.low == pytest.approx(0.025 ** (1 / 10))
    none = counts(0, 0)
    assert (none.low, none.high) == (0.0, 1.0)


def test_fisher_one_sided() -> None:
    assert fisher_greater(counts(20, 10), counts(20, 0)) < 0.001
    assert fisher_greater(counts(20, 0), counts(20, 10)) == pytest.approx(1.0)
    assert fisher_greater(counts(0, 0), counts(5, 1)) == 1.0


def test_second_change_point_is_found_among_bad_builds() -> None:
    # culprit 3 at 20%, then build 6 makes it 80%
    boots = (50, 40, 40, 40, 40, 40, 40, 40, 40)
    fails = (0, 0, 0, 8, 8, 9, 32, 31, 33)
    check = second_change(boots, fails, 3, 8, "bad", seed=1)
    assert check.suspicious
    assert check.split == 6
    assert check.before is not None and check.after is not None
    assert check.before.rate == pytest.approx(25 / 120)
    assert check.after.rate == pytest.approx(96 / 120)
    assert check.p_homogeneity is not None and check.p_homogeneity < 0.001


def test_one_rate_among_bad_builds_is_not_flagged() -> None:
    boots = (50, 40, 40, 40, 40, 40, 40)
    fails = (0, 0, 0, 8, 9, 7, 8)
    check = second_change(boots, fails, 3, 6, "bad", seed=1)
    assert not check.suspicious
    assert check.log10_bayes_factor < 0
    assert check.p_homogeneity is not None and check.p_homogeneity > 0.2


def test_too_few_builds_with_data_give_no_verdict() -> None:
    check = second_change((5, 0, 0, 9), (0, 0, 0, 3), 1, 3, "bad")
    assert check.builds_with_data == 1 and not check.suspicious and check.split is None


def test_summary_of_a_decided_bisection() -> None:
    boots = [60, 0, 0, 30, 25, 0, 0, 60]
    fails = [0, 0, 0, 0, 9, 0, 0, 20]
    s = summarize(posterior(boots, fails))
    assert s.culprit == 4 and s.probability > 0.95
    assert s.at_culprit.boots == 25 and s.at_culprit.failures == 9
    assert s.before_culprit.boots == 30 and s.before_culprit.failures == 0
    assert s.p_culprit_vs_before < 0.001
    assert s.bad_side.boots == 85 and s.good_side.failures == 0
    assert s.total_boots == 175
    assert not s.second_change_suspected
    assert summarize(posterior(boots, fails), seed=0) == s  # seeded: same numbers
