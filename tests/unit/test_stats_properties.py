"""Properties every bound must have, for any counts (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.model import Expectation
from harness.stats import (
    CellCounts,
    boots_to_decide,
    clopper_pearson,
    holm,
    judge,
    lower_bound,
    newcombe,
    upper_bound,
    wilson,
)

EPS = 1e-12


@st.composite
def k_n(draw: st.DrawFn, max_n: int = 2000) -> tuple[int, int]:
    n = draw(st.integers(0, max_n))
    return draw(st.integers(0, n)), n


confidences = st.sampled_from([0.8, 0.9, 0.95, 0.99, 0.999])


@given(k_n(), confidences)
def test_bounds_are_ordered_and_within_0_1(kn: tuple[int, int], c: float) -> None:
    k, n = kn
    w, cp = wilson(k, n, c), clopper_pearson(k, n, c)
    lo, up = lower_bound(k, n, c), upper_bound(k, n, c)
    for x in (w.low, w.high, cp.low, cp.high, lo, up):
        assert 0.0 <= x <= 1.0
    assert w.low <= w.high and cp.low <= cp.high and lo <= up
    if n:
        p = k / n
        assert w.low - EPS <= p <= w.high + EPS
        assert lo - EPS <= p <= up + EPS
        # the one-sided bound is tighter than the two-sided one at the same confidence
        assert up <= cp.high + EPS and lo >= cp.low - EPS


@given(k_n(), confidences)
def test_upper_bound_grows_with_events_and_shrinks_with_boots(kn: tuple[int, int],
                                                              c: float) -> None:
    k, n = kn
    if k < n:
        assert upper_bound(k + 1, n, c) >= upper_bound(k, n, c) - EPS
        assert lower_bound(k + 1, n, c) >= lower_bound(k, n, c) - EPS
    assert upper_bound(k, n + 1, c) <= upper_bound(k, n, c) + EPS
    assert lower_bound(k, n + 1, c) <= lower_bound(k, n, c) + EPS


@given(k_n(), st.sampled_from([0.8, 0.9, 0.95]))
def test_higher_confidence_gives_wider_bounds(kn: tuple[int, int], c: float) -> None:
    k, n = kn
    assert upper_bound(k, n, 0.99) >= upper_bound(k, n, c) - EPS
    assert lower_bound(k, n, 0.99) <= lower_bound(k, n, c) + EPS
    assert wilson(k, n, 0.99).high >= wilson(k, n, c).high - EPS


@settings(max_examples=200)
@given(k_n(500), k_n(500), confidences)
def test_newcombe_contains_the_difference(a: tuple[int, int], b: tuple[int, int],
                                          c: float) -> None:
    ci = newcombe(*a, *b, c)
    assert -1.0 <= ci.low <= ci.high <= 1.0
    if a[1] and b[1]:
        d = a[0] / a[1] - b[0] / b[1]
        assert ci.low - EPS <= d <= ci.high + EPS
        swapped = newcombe(*b, *a, c)  # antisymmetric
        assert abs(swapped.low + ci.high) < 1e-9 and abs(swapped.high + ci.low) < 1e-9


@given(st.lists(st.floats(0.0, 1.0), max_size=30))
def test_holm_is_monotone_and_never_below_the_raw_p(ps: list[float]) -> None:
    adj = holm(ps)
    assert len(adj) == len(ps)
    for p, q in zip(ps, adj, strict=True):
        assert p - EPS <= q <= 1.0
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    ranked = [adj[i] for i in order]
    assert ranked == sorted(ranked)


@settings(max_examples=200)
@given(st.integers(0, 400), st.integers(0, 40), st.integers(0, 40), st.integers(0, 40),
       st.sampled_from([None, 0.0, 0.01, 0.05, 0.2]), st.sampled_from([None, 0.0, 0.02]),
       confidences)
def test_verdict_is_consistent_with_the_bounds(ok: int, off: int, fail: int, infra: int,
                                               m_off: float | None, m_fail: float | None,
                                               c: float) -> None:
    counts = CellCounts(ok, off, fail, infra)
    j = judge(counts, Expectation(vcpu_offline=m_off, boot_failure=m_fail, confidence=c))
    if m_off is None and m_fail is None:
        assert j.status == "not_judged"
        return
    for cj in j.classes:
        assert cj.n == counts.n
        if cj.status == "pass":
            assert cj.upper < cj.maximum
        elif cj.status == "clean":
            assert cj.maximum == 0 and cj.k == 0 and cj.n > 0
        elif cj.status == "fail":
            assert cj.lower > cj.maximum
        else:
            assert cj.lower <= cj.maximum and (cj.upper >= cj.maximum or cj.n == 0)
    statuses = {cj.status for cj in j.classes}
    expected = ("fail" if "fail" in statuses else
                "undecided" if "undecided" in statuses else
                "pass" if statuses == {"pass"} else "clean")
    assert j.status == expected
    # more boots with no event can only move a class towards pass, never to fail
    better = judge(CellCounts(ok + 1000, off, fail, infra),
                   Expectation(vcpu_offline=m_off, boot_failure=m_fail, confidence=c))
    if j.status in ("pass", "clean"):
        assert better.status == j.status


@settings(max_examples=150)
@given(k_n(300), st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.1, 0.3]), confidences)
def test_boots_to_decide_decides_and_no_fewer_would(kn: tuple[int, int], m: float,
                                                    c: float) -> None:
    k, n = kn
    more = boots_to_decide(k, n, m, c)
    if n == 0 or more is None:
        return
    p, total = k / n, n + more

    def decided(t: int) -> bool:
        if m == 0:
            return t > 0
        return upper_bound(p * t, t, c) < m or lower_bound(p * t, t, c) > m

    assert decided(total)
    if more > 0:
        assert not decided(total - 1)
