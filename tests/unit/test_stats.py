"""Statistics against published values, hand-derivable identities and edge cases."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from harness.model import Cell, Expectation, Outcome, Signature
from harness.stats import (
    BOSCHLOO_MAX_TABLE,
    SUCCESS,
    CellCounts,
    adjust,
    boots_to_decide,
    cell_value,
    clopper_pearson,
    compare,
    compare_along,
    count_outcomes,
    exact_test,
    holm,
    judge,
    judge_class,
    lower_bound,
    newcombe,
    rate,
    signature_counts,
    sprt_decision,
    upper_bound,
    wilson,
    zero_failure_bound,
)

# --- single rates -----------------------------------------------------------------------


def test_wilson_matches_published_3_of_10() -> None:
    # R: binom::binom.confint(3, 10, methods = "wilson") -> 0.1077913 0.6032219
    ci = wilson(3, 10)
    assert ci.low == pytest.approx(0.1077913, abs=1e-6)
    assert ci.high == pytest.approx(0.6032219, abs=1e-6)


def test_clopper_pearson_matches_r_binom_test() -> None:
    # R: binom.test(3, 10)$conf.int -> 0.06673951 0.65245285
    ci = clopper_pearson(3, 10)
    assert ci.low == pytest.approx(0.06673951, abs=1e-7)
    assert ci.high == pytest.approx(0.65245285, abs=1e-7)


def test_one_sided_bound_is_the_two_sided_bound_at_twice_the_error() -> None:
    for k, n in [(0, 5), (1, 20), (7, 30), (29, 30), (30, 30)]:
        assert upper_bound(k, n, 0.95) == pytest.approx(clopper_pearson(k, n, 0.90).high)
        assert lower_bound(k, n, 0.95) == pytest.approx(clopper_pearson(k, n, 0.90).low)


def test_zero_failure_bound_rule_of_three() -> None:
    # 1 - 0.05 ** (1/n): 299 clean boots are needed to claim "below 1%" at 95%
    assert zero_failure_bound(299) < 0.01 <= zero_failure_bound(298)
    assert zero_failure_bound(300) == pytest.approx(3 / 300, rel=0.01)  # rule of three
    assert upper_bound(0, 50) == zero_failure_bound(50) == pytest.approx(1 - 0.05 ** (1 / 50))
    assert zero_failure_bound(0) == 1.0


def test_no_boots_means_no_knowledge() -> None:
    r = rate(0, 0)
    assert r.value is None and (r.low, r.high, r.upper) == (0.0, 1.0, 1.0)
    assert r.as_dict() == {"value": None, "low": 0.0, "high": 1.0}


def test_all_events_bounds() -> None:
    assert upper_bound(10, 10) == 1.0
    assert lower_bound(10, 10) == pytest.approx(0.05 ** (1 / 10))


@pytest.mark.parametrize("k,n,c", [(-1, 5, 0.95), (6, 5, 0.95), (1, 5, 1.0), (1, 5, 0.0)])
def test_bad_arguments_are_refused(k: int, n: int, c: float) -> None:
    with pytest.raises(ValueError):
        wilson(k, n, c)


# --- counts -----------------------------------------------------------------------------


def test_infrastructure_errors_are_not_guest_boots() -> None:
    c = count_outcomes(["ok", "ok", Outcome.VCPU_OFFLINE, "infra_error", "infra_error"])
    assert (c.n, c.boots, c.infra_error) == (3, 5, 2)
    assert c.rate("vcpu_offline").value == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        c.rate("infra_error")
    assert (c + c).n == 6


def test_signature_counts_count_boots_most_first() -> None:
    a, b = Signature("panic", "Kernel panic - x"), Signature("cpu_failed_online", "CPU# failed")
    got = signature_counts([[b, b], [a, b], [], [a]])
    # b twice in one boot counts once; ties ordered by kind then title
    assert [(s.title, s.count) for s in got] == [(b.title, 2), (a.title, 2)]
    got = signature_counts([[a], [a], [b]])
    assert [s.count for s in got] == [2, 1] and got[0].title == a.title


# --- verdicts ---------------------------------------------------------------------------


def test_maximum_zero_without_an_event_is_clean_never_pass_and_claims_only_the_bound(
        ) -> None:
    j = judge_class("vcpu_offline", 0, 50, 0.0)
    assert j.status == "clean"
    assert j.statement == "vcpu-offline: no failure in 50 boots (rate < 5.8% at 95%)"
    assert judge_class("vcpu_offline", 0, 2, 0.0).statement.endswith("(rate < 77.6% at 95%)")
    assert judge_class("vcpu_offline", 1, 500, 0.0).status == "fail"
    none = judge_class("vcpu_offline", 0, 0, 0.0)
    assert none.status == "undecided" and none.more_boots == 1


def test_maximum_zero_passes_only_once_the_named_rate_is_ruled_out() -> None:
    # 2% at 95% needs 149 clean boots (1 - 0.98^149 > 0.95)
    j = judge_class("vcpu_offline", 0, 149, 0.0, 0.95, 0.02)
    assert j.status == "pass" and "rules out 2%" in j.statement and j.upper < 0.02
    short = judge_class("vcpu_offline", 0, 100, 0.0, 0.95, 0.02)
    assert short.status == "undecided" and short.more_boots == 49
    assert "49 more clean boots would rule out 2%" in short.statement
    assert judge_class("vcpu_offline", 1, 500, 0.0, 0.95, 0.02).status == "fail"
    none = judge_class("vcpu_offline", 0, 0, 0.0, 0.95, 0.02)
    assert none.status == "undecided" and none.more_boots == 149
    e = Expectation(vcpu_offline=0.0, boot_failure=0.0, confidence=0.95, rule_out=0.02)
    assert judge(CellCounts(ok=149), e).status == "pass"
    assert judge(CellCounts(ok=148), e).status == "undecided"
    # without rule_out the same clean cell is "clean", counted as success, not as pass
    zero = Expectation(vcpu_offline=0.0, boot_failure=0.0)
    assert judge(CellCounts(ok=149), zero).status == "clean"
    assert {"pass", "clean", "not_judged"} == SUCCESS


def test_pass_needs_the_upper_bound_below_the_maximum() -> None:
    assert judge_class("boot_failure", 0, 299, 0.01).status == "pass"
    j = judge_class("boot_failure", 0, 298, 0.01)
    assert j.status == "undecided" and j.more_boots == 1
    assert "1 more boots" in j.statement


def test_fail_needs_the_lower_bound_above_the_maximum() -> None:
    j = judge_class("vcpu_offline", 3, 50, 0.01)
    assert j.status == "fail" and j.lower > 0.01
    assert "above 1.7%" in j.statement
    assert judge_class("vcpu_offline", 1, 50, 0.01).status == "undecided"


def test_cell_verdict_combines_classes() -> None:
    e = Expectation(vcpu_offline=0.01, boot_failure=0.0, confidence=0.95)
    # one class passes (below 1%), the other is clean (maximum 0, nothing to rule out)
    assert judge(CellCounts(ok=400), e).status == "clean"
    one_pct = Expectation(vcpu_offline=0.01, boot_failure=0.01)
    assert judge(CellCounts(ok=400), one_pct).status == "pass"
    fail = judge(CellCounts(ok=399, boot_failure=1), e)
    assert fail.status == "fail" and "boot-failure" in fail.statement
    und = judge(CellCounts(ok=100), e)
    assert und.status == "undecided" and und.more_boots == 199
    unjudged = Expectation(vcpu_offline=None, boot_failure=None)
    assert judge(CellCounts(ok=3), unjudged).status == "not_judged"
    # infrastructure errors change nothing
    assert judge(CellCounts(ok=400, infra_error=50), e) == judge(CellCounts(ok=400), e)


def test_undecided_at_exactly_the_maximum_never_decides() -> None:
    j = judge_class("vcpu_offline", 5, 100, 0.05)
    assert j.status == "undecided" and j.more_boots is None
    assert "would not decide" in j.statement


def test_boots_to_decide_is_the_smallest_number_that_decides() -> None:
    for k, n, m in [(1, 50, 0.05), (4, 40, 0.05), (2, 100, 0.01), (0, 10, 0.2), (8, 60, 0.1)]:
        more = boots_to_decide(k, n, m)
        assert more is not None and more > 0
        p = k / n
        total = n + more

        def decided(t: int) -> bool:
            return upper_bound(p * t, t) < m or lower_bound(p * t, t) > m  # noqa: B023

        assert decided(total) and not decided(total - 1)
    assert boots_to_decide(0, 299, 0.01) == 0


def test_confidence_of_the_expectation_is_used() -> None:
    lax = judge(CellCounts(ok=60),
                Expectation(vcpu_offline=0.05, boot_failure=None, confidence=0.9))
    strict = judge(CellCounts(ok=60),
                   Expectation(vcpu_offline=0.05, boot_failure=None, confidence=0.99))
    assert lax.status == "pass" and strict.status == "undecided"


# --- comparisons ------------------------------------------------------------------------


def test_newcombe_matches_newcombe_1998_table_ii() -> None:
    # Newcombe (1998), Stat Med 17:873, method 10
    ci = newcombe(56, 70, 48, 80)
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.0524, 0.3339)
    ci = newcombe(9, 10, 3, 10)
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.1705, 0.8090)


def test_boschloo_matches_scipy_documented_example() -> None:
    a = CellCounts(ok=43, vcpu_offline=74)
    b = CellCounts(ok=32, vcpu_offline=31)
    c = compare("doc", a, b, "vcpu_offline", alternative="greater")
    assert c.method == "boschloo"
    assert c.p_value == pytest.approx(0.0355, abs=1e-4)
    assert c.difference == pytest.approx(74 / 117 - 31 / 63)
    assert c.interval.low < c.difference < c.interval.high
    assert c.significant


def test_large_tables_fall_back_to_fisher_which_is_conservative() -> None:
    a = CellCounts(ok=960, vcpu_offline=40)
    b = CellCounts(ok=980, vcpu_offline=20)
    assert a.n * b.n > BOSCHLOO_MAX_TABLE
    p, method = exact_test(40, 1000, 20, 1000, "greater")
    assert method == "fisher"
    assert p == pytest.approx(sps.fisher_exact([[40, 20], [960, 980]], "greater").pvalue)
    small = exact_test(12, 100, 4, 100, "greater")
    assert small[1] == "boschloo"
    assert small[0] <= sps.fisher_exact([[12, 4], [88, 96]], "greater").pvalue


def test_no_events_anywhere_is_not_a_difference() -> None:
    c = compare("x", CellCounts(ok=30), CellCounts(ok=30), "boot_failure")
    assert (c.p_value, c.method, c.significant) == (1.0, "none", False)
    assert compare("x", CellCounts(), CellCounts(ok=3), "ok").difference is None


def test_holm_matches_r_p_adjust() -> None:
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm")
    assert holm([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    # R: p.adjust(c(0.04, 0.01, 0.03), "holm") -> 0.06 0.03 0.06
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([]) == []


def test_adjust_sets_significance_from_the_adjusted_p() -> None:
    base = compare("x", CellCounts(ok=24, vcpu_offline=6), CellCounts(ok=29, vcpu_offline=1),
                   "vcpu_offline")
    assert 0.01 < base.p_value < 0.05 and base.significant
    fam = adjust([base] * 5)
    assert all(c.p_adjusted == pytest.approx(min(1.0, 5 * base.p_value)) for c in fam)
    assert not any(c.significant for c in fam)


def _cell(host: str, guest: str, numa: bool, vcpus: int = 8) -> Cell:
    return Cell(id=f"{host}/{guest}/vcpu{vcpus}", matrix="m", host=host, guest=guest,
                vcpus=vcpus, boots=10, params=(("kernel_cfg", "a"),),
                host_attrs=(("numa_patch", numa),))


def test_compare_along_a_host_attribute_per_guest() -> None:
    cells = [
        (_cell("node-1", "es11", False), CellCounts(ok=0, vcpu_offline=40)),
        (_cell("node-3", "es11", True), CellCounts(ok=32, vcpu_offline=8)),
        (_cell("node-1", "es10", False), CellCounts(ok=40)),
        (_cell("node-3", "es10", True), CellCounts(ok=40)),
        (_cell("node-4", "es14", True), CellCounts(ok=40)),  # no numa_patch=false side
    ]
    fam = compare_along(cells, "numa_patch", False, True, by=("guest",),
                        outcomes=("vcpu_offline",))
    assert [c.label for c in fam] == [
        "vcpu_offline: numa_patch=False vs numa_patch=True (guest=es11)",
        "vcpu_offline: numa_patch=False vs numa_patch=True (guest=es10)",
    ]
    es11, es10 = fam
    assert es11.significant and es11.p_adjusted == pytest.approx(min(1, 2 * es11.p_value))
    assert not es10.significant and es10.p_value == 1.0
    assert (es11.k_a, es11.n_a, es11.k_b, es11.n_b) == (40, 40, 8, 40)


def test_compare_along_pools_cells_and_accepts_yaml_spellings() -> None:
    cells = [
        (_cell("a", "g1", True, 2), CellCounts(ok=5, vcpu_offline=5)),
        (_cell("a", "g1", True, 4), CellCounts(ok=5, vcpu_offline=5)),
        (_cell("b", "g1", False, 2), CellCounts(ok=10)),
    ]
    (c,) = compare_along(cells, "numa_patch", "true", "false", outcomes=("vcpu_offline",))
    assert (c.k_a, c.n_a, c.k_b, c.n_b) == (10, 20, 0, 10)
    assert compare_along(cells, "no_such_axis", 1, 2) == ()
    assert cell_value(cells[0][0], "kernel_cfg") == "a"
    with pytest.raises(KeyError):
        cell_value(cells[0][0], "nope")


# --- sequential test --------------------------------------------------------------------


def test_sprt_decisions() -> None:
    a = math.log(0.95 / 0.05)
    # with p0=1%, p1=5%: each clean boot moves the LLR by log(0.95/0.99)
    clean_needed = math.ceil(a / -math.log(0.95 / 0.99))
    assert sprt_decision(0, clean_needed, 0.01, 0.05) == "accept_h0"
    assert sprt_decision(0, clean_needed - 1, 0.01, 0.05) == "continue"
    assert sprt_decision(3, 10, 0.01, 0.05) == "accept_h1"
    assert sprt_decision(1, 5, 0.0, 0.05) == "accept_h1"
    assert sprt_decision(0, 2, 0.0, 0.5) == "continue"
    assert sprt_decision(0, 5, 0.0, 1.0) == "accept_h0"
    with pytest.raises(ValueError):
        sprt_decision(0, 5, 0.05, 0.01)


def test_compare_along_guest_vs_guest_per_host_two_sided() -> None:
    cells = [
        (_cell("node-3", "es10", True), CellCounts(ok=60)),
        (_cell("node-3", "es11", True), CellCounts(ok=45, vcpu_offline=15)),
        (_cell("node-1", "es10", False), CellCounts(ok=60)),
        (_cell("node-1", "es11", False), CellCounts(vcpu_offline=60)),
    ]
    fam = compare_along(cells, "guest", "es10", "es11", by=("host",),
                        outcomes=("vcpu_offline", "boot_failure"), alternative="less")
    assert len(fam) == 4
    by_label = {c.label: c for c in fam}
    n3 = by_label["vcpu_offline: guest=es10 vs guest=es11 (host=node-3)"]
    assert n3.difference == pytest.approx(-0.25) and n3.interval.high < 0
    assert n3.significant and n3.alternative == "less"
    bf = by_label["boot_failure: guest=es10 vs guest=es11 (host=node-1)"]
    assert (bf.p_value, bf.significant) == (1.0, False)
    # Holm: the smallest p is multiplied by the family size (4)
    smallest = min(fam, key=lambda c: c.p_value)
    assert smallest.p_adjusted == pytest.approx(min(1.0, 4 * smallest.p_value))
