"""Do the intervals and verdicts keep their promises on simulated data?

Every simulation is seeded (deterministic). With N simulated cells, a coverage estimate has
binomial standard error SE = sqrt(0.95 * 0.05 / N) (0.0040 for N = 3000), so a correct
95% method lands within 3 SE of its true coverage with probability 0.997. Wilson's mean
coverage over a spread of true rates is close to 95% (Newcombe 1998a), Clopper-Pearson
never covers less than 95% (exact), and Newcombe's hybrid interval for a difference is
slightly conservative (mean coverage about 95.6% in Newcombe 1998b).
"""

from __future__ import annotations

import math

import numpy as np

from harness.model import Expectation
from harness.stats import (
    CellCounts,
    clopper_pearson,
    exact_test,
    judge,
    newcombe,
    sprt_decision,
    upper_bound,
    wilson,
)

N = 3000
SE = math.sqrt(0.95 * 0.05 / N)
TOL = 3 * SE


def _cells(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.5, N)
    n = rng.choice([20, 50, 100, 300], N)
    return p, n, rng.binomial(n, p)


def test_wilson_95_covers_the_true_rate_in_95_percent_of_cells() -> None:
    p, n, k = _cells(7)
    covered = [q in wilson(int(a), int(b)) for a, b, q in zip(k, n, p, strict=True)]
    assert abs(np.mean(covered) - 0.95) <= TOL


def test_wilson_90_is_not_a_95_interval() -> None:
    # the coverage check is sharp enough to see a wrong confidence level
    p, n, k = _cells(7)
    covered = [q in wilson(int(a), int(b), 0.9) for a, b, q in zip(k, n, p, strict=True)]
    assert abs(np.mean(covered) - 0.95) > TOL
    assert abs(np.mean(covered) - 0.90) <= 3 * math.sqrt(0.9 * 0.1 / N)


def test_clopper_pearson_never_covers_less_than_95_percent() -> None:
    p, n, k = _cells(11)
    two = np.mean([q in clopper_pearson(int(a), int(b)) for a, b, q in zip(k, n, p, strict=True)])
    one = np.mean([q <= upper_bound(int(a), int(b)) for a, b, q in zip(k, n, p, strict=True)])
    assert two >= 0.95 - TOL and one >= 0.95 - TOL
    assert two <= 0.99 and one <= 0.99  # exact, but not absurdly wide


def test_zero_failure_bound_is_right_for_small_rates() -> None:
    # rare events: most cells see none, and the bound must still hold 95% of the time
    rng = np.random.default_rng(3)
    p = rng.uniform(0.0005, 0.01, N)
    n = rng.choice([50, 100, 300], N)
    k = rng.binomial(n, p)
    assert np.mean(k == 0) > 0.3
    one = np.mean([q <= upper_bound(int(a), int(b)) for a, b, q in zip(k, n, p, strict=True)])
    assert one >= 0.95 - TOL


def test_newcombe_difference_interval_covers_about_95_percent() -> None:
    rng = np.random.default_rng(5)
    pa, pb = rng.uniform(0.01, 0.5, N), rng.uniform(0.01, 0.5, N)
    n = rng.choice([20, 50, 100], N)
    ka, kb = rng.binomial(n, pa), rng.binomial(n, pb)
    covered = [(a - b) in newcombe(int(x), int(m), int(y), int(m))
               for x, y, m, a, b in zip(ka, kb, n, pa, pb, strict=True)]
    assert 0.95 - TOL <= np.mean(covered) <= 0.956 + TOL


def test_verdict_claims_are_wrong_at_most_5_percent_of_the_time() -> None:
    # true rate exactly at the maximum: "pass" claims it is below, "fail" above;
    # each claim may be wrong in at most 1 - confidence of the cells
    rng = np.random.default_rng(13)
    m, boots = 0.05, 200
    k = rng.binomial(boots, m, N)
    statuses = [judge(CellCounts(ok=boots - int(x), vcpu_offline=int(x)),
                      Expectation(vcpu_offline=m, boot_failure=None)).status for x in k]
    assert np.mean([s == "pass" for s in statuses]) <= 0.05 + TOL
    assert np.mean([s == "fail" for s in statuses]) <= 0.05 + TOL
    # and a cell clearly below the maximum passes most of the time at this size
    k = rng.binomial(boots, 0.005, 500)
    good = [judge(CellCounts(ok=boots - int(x), vcpu_offline=int(x)),
                  Expectation(vcpu_offline=m, boot_failure=None)).status for x in k]
    assert np.mean([s == "pass" for s in good]) > 0.9


def test_boschloo_keeps_its_size_and_has_power() -> None:
    rng = np.random.default_rng(17)
    sims, n = 1000, 15
    se = math.sqrt(0.05 * 0.95 / sims)
    ka, kb = rng.binomial(n, 0.3, sims), rng.binomial(n, 0.3, sims)
    size = np.mean([exact_test(int(a), n, int(b), n, "greater")[0] < 0.05
                    for a, b in zip(ka, kb, strict=True)])
    assert size <= 0.05 + 3 * se
    ka, kb = rng.binomial(n, 0.7, 200), rng.binomial(n, 0.1, 200)
    power = np.mean([exact_test(int(a), n, int(b), n, "greater")[0] < 0.05
                     for a, b in zip(ka, kb, strict=True)])
    assert power > 0.9


def _sprt_run(rng: np.random.Generator, p: float, p0: float, p1: float,
              cap: int = 3000) -> str:
    events = rng.random(cap) < p
    k = 0
    for i, e in enumerate(events, start=1):
        k += int(e)
        d = sprt_decision(k, i, p0, p1, 0.05, 0.05)
        if d != "continue":
            return d
    return "continue"


def test_sprt_error_rates_match_alpha_and_beta() -> None:
    # Wald: P(accept H1 | p0) <= alpha / (1 - beta) and P(accept H0 | p1) <= beta / (1 - alpha)
    rng = np.random.default_rng(19)
    sims = 600
    se = math.sqrt(0.05 * 0.95 / sims)
    at_p0 = [_sprt_run(rng, 0.02, 0.02, 0.10) for _ in range(sims)]
    at_p1 = [_sprt_run(rng, 0.10, 0.02, 0.10) for _ in range(sims)]
    assert np.mean([d == "accept_h1" for d in at_p0]) <= 0.05 / 0.95 + 3 * se
    assert np.mean([d == "accept_h0" for d in at_p1]) <= 0.05 / 0.95 + 3 * se
    assert "continue" not in at_p0 + at_p1
