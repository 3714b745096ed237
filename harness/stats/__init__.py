"""Statistics people can trust: pure functions over counts (no I/O, no state).

API (everything takes plain counts; ``k`` events out of ``n`` guest boots):

- ``display_interval(k, n, confidence)`` -> ``Interval``: what reports show for a fixed-n
  rate (two-sided Clopper-Pearson: >= 95% coverage at every rate, where Wilson's drops to
  84% near 0.17/n). ``wilson`` stays for Newcombe's difference interval.
- ``upper_bound(k, n, confidence)`` / ``lower_bound(...)``: one-sided Clopper-Pearson
  bounds, for claims ("vCPU-offline rate below 1.2% with 95% confidence").
  ``zero_failure_bound(n, confidence)`` = ``1 - (1 - C) ** (1 / n)`` (the k = 0 case).
- ``rate(k, n)`` -> ``Rate`` (value, displayed low/high, one-sided CP upper bound).
- ``CellCounts`` / ``count_outcomes(outcomes)``: boots per outcome class; ``n`` (the
  denominator of every rate) excludes infrastructure errors.
- ``signature_counts(signature_lists)``: boots per signature, most frequent first.
- ``judge(counts, expect)`` -> ``Judgement``: the cell's verdict ``pass`` / ``clean`` /
  ``fail`` / ``undecided`` / ``not_judged`` against its ``Expectation`` (rules in
  docs/results.md); ``clean`` = maximum 0, no event, no ``rule_out`` reached or asked.
- ``judge_sequential(counts, expect)``: the same read off ``confidence_sequence`` (valid
  after an adaptive early stop).
- ``boots_to_decide(k, n, maximum, confidence)``: more boots that would decide an
  undecided class if the observed rate held.
- ``compare(label, a, b, outcome, alternative)`` -> ``Comparison``: one-sided Boschloo
  exact test (Fisher's exact test above ``BOSCHLOO_MAX_TABLE``) and Newcombe's hybrid
  score interval for the difference of rates a - b.
- ``holm(p_values)`` and ``adjust(comparisons)``: Holm step-down correction of a family.
- ``compare_along(cells, axis, a, b, by=..., outcome=...)``: pool cells by an axis or host
  attribute (e.g. ``numa_patch`` true vs false for each guest) and compare, Holm-adjusted.
- ``sprt_decision(k, n, p0, p1, alpha, beta)``: Wald's sequential probability ratio test,
  for adaptive stopping ("accept_h0" rate <= p0, "accept_h1" rate >= p1, "continue").
"""


from harness.stats.compare import (
    BOSCHLOO_MAX_TABLE,
    JUDGED,
    Alternative,
    Comparison,
    adjust,
    cell_value,
    compare,
    compare_along,
    exact_test,
    holm,
    newcombe,
)
from harness.stats.rates import (
    DISPLAY_METHOD,
    CellCounts,
    Interval,
    Rate,
    clopper_pearson,
    count_outcomes,
    display_interval,
    lower_bound,
    rate,
    rates_of,
    signature_counts,
    upper_bound,
    wilson,
    zero_failure_bound,
)
from harness.stats.sequential import (
    CS_METHOD,
    SprtDecision,
    confidence_sequence,
    judge_cell,
    judge_sequential,
    sprt_decision,
)
from harness.stats.verdict import (
    MAX_BOOTS_TO_DECIDE,
    SUCCESS,
    ClassJudgement,
    Judgement,
    Status,
    boots_to_decide,
    judge,
    judge_class,
)

__all__ = [
    "BOSCHLOO_MAX_TABLE",
    "CS_METHOD",
    "DISPLAY_METHOD",
    "JUDGED",
    "MAX_BOOTS_TO_DECIDE",
    "SUCCESS",
    "Alternative",
    "CellCounts",
    "ClassJudgement",
    "Comparison",
    "Interval",
    "Judgement",
    "Rate",
    "SprtDecision",
    "Status",
    "adjust",
    "boots_to_decide",
    "cell_value",
    "clopper_pearson",
    "compare",
    "compare_along",
    "confidence_sequence",
    "count_outcomes",
    "display_interval",
    "exact_test",
    "holm",
    "judge",
    "judge_cell",
    "judge_class",
    "judge_sequential",
    "lower_bound",
    "newcombe",
    "rate",
    "rates_of",
    "signature_counts",
    "sprt_decision",
    "upper_bound",
    "wilson",
    "zero_failure_bound",
]
