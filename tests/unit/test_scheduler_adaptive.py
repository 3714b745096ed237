"""Adaptive stopping: decisions read off the confidence sequence (maximum 0 and 0.05),
the stopper's bookkeeping, and intervals that stay valid after a data-dependent stop."""

from __future__ import annotations

import math
import random

import pytest

from harness.adaptive import (
    AdaptiveSettings,
    SequentialStopper,
    cell_decision,
    confidence_sequence,
    decide,
)
from harness.model import BootResult, Cell, Expectation, Outcome
from harness.stats import CellCounts, judge, judge_cell, wilson


def cell(vo: float | None = 0.0, bf: float | None = 0.0, rule_out: float | None = None
         ) -> Cell:
    return Cell(id="h/g/vcpu8", matrix="m", host="h", guest="g", vcpus=8, boots=1000,
                expect=Expectation(vcpu_offline=vo, boot_failure=bf, rule_out=rule_out))


def first(pred: object, ns: range) -> int | None:
    return next((n for n in ns if pred(n)), None)  # type: ignore[operator]


def test_maximum_zero_fails_at_the_first_event_and_never_passes_without_rule_out() -> None:
    s = AdaptiveSettings(min_boots=5)
    assert cell_decision(CellCounts(ok=3, vcpu_offline=1), cell(), s) is None  # < min
    d = decide(CellCounts(ok=4, vcpu_offline=1), cell(), s)
    assert d is not None and d.decision == "fail" and d.at_boot == 5
    assert d.outcome == "vcpu_offline" and d.low > 0 and d.method == "confidence sequence"
    assert (d.low, d.high) == tuple(confidence_sequence(1, 5))
    assert cell_decision(CellCounts(ok=4, boot_failure=1), cell(), s) == "fail"
    # no failure seen is never a pass by itself: the cell keeps booting to its count
    assert cell_decision(CellCounts(ok=5000), cell(), s) is None
    # ... unless the matrix names a rate to rule out: pass once the sequence is below it
    n = first(lambda n: cell_decision(CellCounts(ok=n), cell(rule_out=0.05), s) == "pass",
              range(5, 400))
    assert n is not None and confidence_sequence(0, n).high < 0.05
    assert confidence_sequence(0, n - 1).high >= 0.05


def test_maximum_005_passes_and_fails_where_the_sequence_leaves_the_maximum() -> None:
    s = AdaptiveSettings()
    c = cell(0.05, 0.05)
    n = first(lambda n: cell_decision(CellCounts(ok=n), c, s) == "pass", range(5, 400))
    assert n is not None
    assert confidence_sequence(0, n).high < 0.05 <= confidence_sequence(0, n - 1).high
    # the fixed-n rule would already pass it, so the verdict read at the stop is the
    # sequence's, never "undecided (stopped early)" as with the SPRT
    assert judge(CellCounts(ok=n), c.expect).status == "pass"
    assert judge_cell(CellCounts(ok=n), c.expect, stopped_early=True).status == "pass"
    k = first(lambda k: cell_decision(CellCounts(ok=60 - k, vcpu_offline=k), c, s) == "fail",
              range(0, 61))
    assert k is not None and confidence_sequence(k, 60).low > 0.05
    assert confidence_sequence(k - 1, 60).low <= 0.05
    # both classes must be below for a pass; one above is enough for a fail
    assert cell_decision(CellCounts(ok=n - 30, boot_failure=30), c, s) == "fail"
    assert cell_decision(CellCounts(ok=60, vcpu_offline=2), c, s) is None
    assert cell_decision(CellCounts(ok=500), cell(None, None), s) is None


def test_stopped_cells_are_judged_on_the_sequence_every_time() -> None:
    # at the stop the verdict and the interval agree: pass means the shown interval's
    # upper end is below the maximum
    c = cell(0.05, 0.05)
    for counts in (CellCounts(ok=200), CellCounts(ok=40, vcpu_offline=20),
                   CellCounts(ok=80, vcpu_offline=3)):
        j = judge_cell(counts, c.expect, stopped_early=True)
        for cls in j.classes:
            ci = confidence_sequence(counts.k(cls.outcome), counts.n)
            assert (cls.lower, cls.upper) == (ci.low, ci.high)
            assert cls.status != "pass" or ci.high < 0.05
            assert cls.status != "fail" or ci.low > 0.05
            r = counts.rate(cls.outcome, sequential=True)
            assert (r.low, r.high) == (ci.low, ci.high)


def test_adaptive_verdicts_are_right_at_the_maximum_and_far_from_it() -> None:
    """Simulated cells with known rates, stopped by the rule after every boot: a pass of a
    cell at or above its maximum (or a fail of one at or below) is an error; such errors
    stay within 5% (the sequence is valid at every n), and cells far from the maximum
    are decided."""
    rng = random.Random(11)
    s = AdaptiveSettings()
    c = cell(0.05, None)
    for p, wrong in ((0.05, ("pass", "fail")), (0.0, ("fail",)), (0.2, ("pass",))):
        errors = decided = 0
        runs = 150
        for _ in range(runs):
            k = 0
            for n in range(1, 301):
                k += rng.random() < p
                d = cell_decision(CellCounts(ok=n - k, vcpu_offline=k), c, s)
                if d is not None:
                    decided += 1
                    errors += d in wrong
                    break
        assert errors / runs <= 0.05, (p, errors)
        if p != 0.05:
            assert decided == runs, (p, decided)


def test_the_stopper_counts_results_and_takes_prior_counts() -> None:
    c = cell()
    st = SequentialStopper([c], AdaptiveSettings(min_boots=3),
                           prior={c.id: CellCounts(ok=2)})
    assert not st.decided(c.id)
    st.observe(BootResult("r", c.id, 2, Outcome.INFRA_ERROR))  # not a guest boot
    assert not st.decided(c.id)
    st.observe(BootResult("r", c.id, 3, Outcome.VCPU_OFFLINE))
    assert st.decided(c.id) and st.decision(c.id) == "fail"
    made = st.record(c.id)
    assert made is not None and made.at_boot == 3 and made.decision == "fail"
    assert not st.decided("other") and st.record("other") is None


def test_confidence_sequence_contains_wilson_and_is_valid_after_optional_stopping() -> None:
    for k, n in ((0, 10), (3, 10), (10, 10), (30, 100), (1, 500)):
        lo, hi = confidence_sequence(k, n)
        w = wilson(k, n)
        assert lo <= w.low + 1e-9 and hi >= w.high - 1e-9  # wider: it holds at every n
        assert lo <= k / n <= hi
    assert tuple(confidence_sequence(0, 0)) == (0.0, 1.0)
    with pytest.raises(ValueError):
        confidence_sequence(3, 2)
    # "peek after every boot and stop as soon as the interval excludes p": the confidence
    # sequence excludes the true p in at most ~5% of runs; a plain Wilson interval, read
    # the same way, far more often (why it is not shown after an adaptive stop)
    rng = random.Random(5)
    p, runs = 0.2, 120
    excluded = {"cs": 0, "wilson": 0}
    for _ in range(runs):
        k = 0
        hit = {"cs": False, "wilson": False}
        for n in range(1, 151):
            k += rng.random() < p
            lo_w, hi_w = _wilson95(k, n)
            hit["wilson"] |= not lo_w <= p <= hi_w
            if not hit["cs"] and n % 3 == 0:
                lo, hi = confidence_sequence(k, n)
                hit["cs"] = not lo <= p <= hi
        for name, h in hit.items():
            excluded[name] += h
    assert excluded["cs"] / runs <= 0.05
    assert excluded["wilson"] / runs > 0.15


def _wilson95(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return centre - half, centre + half
