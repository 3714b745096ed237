"""The culprit posterior against brute-force integration, and its edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import beta as beta_fn

from harness.bisect.model import Priors, evaluate, posterior


def _integral(fails: int, oks: int, a: float, b: float) -> float:
    """E[p^fails (1-p)^oks] under Beta(a, b), by adaptive quadrature with the Beta weight
    (handles the endpoint singularities of a, b < 1)."""
    val, _ = quad(lambda p: p**fails * (1 - p) ** oks, 0.0, 1.0, weight="alg",
                  wvar=(a - 1.0, b - 1.0), epsabs=0.0, epsrel=1e-11, limit=200)
    return float(val / beta_fn(a, b))


def brute_force(boots: list[int], failures: list[int], priors: Priors, model: str
                ) -> tuple[np.ndarray, float]:
    """Posterior over the culprit and P(model B) from the definition: for each culprit, the
    Bernoulli likelihood of every boot integrated numerically over the rates."""
    n = len(boots)
    w_b = {"auto": priors.baseline, "clean": 0.0, "baseline": 1.0}[model]
    joint = np.zeros((2, n))
    for c in range(1, n):
        fb = sum(failures[c:])
        sb = sum(boots[c:]) - fb
        fg = sum(failures[:c])
        sg = sum(boots[:c]) - fg
        bad = _integral(fb, sb, priors.bad_a, priors.bad_b)
        joint[0, c] = (1 - w_b) * bad * (1.0 if fg == 0 else 0.0)
        joint[1, c] = w_b * bad * _integral(fg, sg, priors.good_a, priors.good_b)
    joint /= joint.sum()
    return joint.sum(axis=0), float(joint[1].sum())


CASES = [
    ([5, 3, 0, 4, 6], [0, 0, 0, 1, 2]),
    ([10, 2, 7, 1, 0, 9], [0, 0, 1, 0, 0, 3]),
    ([20, 5, 5, 5], [1, 0, 2, 4]),  # the known-good build failed: model A impossible
    ([0, 0, 0], [0, 0, 0]),
    ([3, 12, 1, 8, 2, 0, 30], [0, 0, 0, 0, 1, 0, 9]),
]
PRIORS = [Priors(), Priors(bad_a=1, bad_b=1, good_a=1, good_b=1, baseline=0.5),
          Priors(bad_a=0.5, bad_b=2.0, good_a=0.7, good_b=9.0, baseline=0.3)]


@pytest.mark.parametrize("model", ["auto", "baseline", "clean"])
@pytest.mark.parametrize("priors", PRIORS)
@pytest.mark.parametrize(("boots", "failures"), CASES)
def test_posterior_matches_numerical_integration(boots: list[int], failures: list[int],
                                                 priors: Priors, model: str) -> None:
    if model == "clean" and failures[0] > 0:
        with pytest.raises(ValueError, match="impossible under the clean model"):
            posterior(boots, failures, priors, model)  # type: ignore[arg-type]
        return
    expected, wb = brute_force(boots, failures, priors, model)
    post = posterior(boots, failures, priors, model)  # type: ignore[arg-type]
    np.testing.assert_allclose(post.culprit, expected, rtol=1e-7, atol=1e-12)
    assert post.baseline_weight == pytest.approx(wb, rel=1e-7, abs=1e-12)
    assert post.culprit[0] == 0.0
    assert sum(post.culprit) == pytest.approx(1.0)


def test_no_data_gives_the_prior() -> None:
    post = posterior([0] * 9, [0] * 9)
    assert post.culprit[0] == 0
    np.testing.assert_allclose(post.culprit[1:], 1 / 8)
    assert post.entropy_bits == pytest.approx(3.0)


def test_custom_prior_weights_the_culprits() -> None:
    post = posterior([0] * 4, [0] * 4, prior=[5.0, 1.0, 0.0, 3.0])
    np.testing.assert_allclose(post.culprit, [0, 0.25, 0, 0.75])
    with pytest.raises(ValueError, match="prior"):
        posterior([0] * 4, [0] * 4, prior=[1.0, 0.0, 0.0, 0.0])


def test_a_failure_rules_out_later_culprits_under_the_clean_model() -> None:
    boots = [10, 3, 3, 3, 3, 3, 10]
    failures = [0, 0, 0, 1, 0, 0, 4]
    post = posterior(boots, failures, model="clean")
    assert all(p == 0.0 for p in post.culprit[4:])
    assert post.baseline_weight == 0.0
    # the baseline model keeps them possible: build 3 may have failed at the baseline rate
    assert all(p > 0 for p in posterior(boots, failures, model="baseline").culprit[4:])


def test_a_known_good_failure_leaves_only_the_baseline_model() -> None:
    boots, failures = [50, 10, 10, 10, 50], [1, 0, 0, 3, 12]
    auto = posterior(boots, failures)
    base = posterior(boots, failures, model="baseline")
    assert auto.baseline_weight == pytest.approx(1.0)
    np.testing.assert_allclose(auto.culprit, base.culprit, rtol=1e-12)


def test_clean_good_builds_make_the_clean_model_win() -> None:
    boots, failures = [400, 40, 40, 40, 400], [0, 0, 0, 10, 80]
    post = posterior(boots, failures, Priors(good_a=1, good_b=1, baseline=0.5))
    assert post.baseline_weight < 0.01
    assert post.best == 3


def test_two_builds_are_decided_without_data() -> None:
    post = posterior([0, 0], [0, 0])
    assert post.culprit == pytest.approx((0.0, 1.0))
    assert post.probability == pytest.approx(1.0)
    assert post.credible_set(0.95) == (1,)


def test_credible_set_is_the_smallest_covering_set() -> None:
    post = posterior([0] * 5, [0] * 5, prior=[0, 0.5, 0.3, 0.15, 0.05])
    assert post.credible_set(0.8) == (1, 2)
    assert post.credible_set(0.95) == (1, 2, 3)


@pytest.mark.parametrize(("boots", "failures", "message"), [
    ([1, 2], [2, 0], "failures <= boots"),
    ([1, -2], [0, 0], "failures <= boots"),
    ([1, 2, 3], [0, 0], "same length"),
    ([4], [0], "at least two builds"),
])
def test_bad_counts_are_refused(boots: list[int], failures: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        posterior(boots, failures)


def test_priors_are_checked() -> None:
    with pytest.raises(ValueError, match="bad_a"):
        Priors(bad_a=0)
    with pytest.raises(ValueError, match="baseline"):
        Priors(baseline=1.0)


def test_many_campaigns_at_once_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(4)
    k = rng.integers(0, 30, size=(6, 40))
    f = rng.binomial(k, 0.15)
    ev = evaluate(k, f)
    for r in range(6):
        one = evaluate(k[r], f[r])
        np.testing.assert_allclose(one.post, ev.post[r], rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(one.g, ev.g[r], rtol=1e-10)
        assert float(one.log_evidence) == pytest.approx(float(ev.log_evidence[r]))


def test_large_counts_stay_finite() -> None:
    post = posterior([10**6, 10**6, 10**6], [0, 10, 200_000])
    assert all(math.isfinite(p) for p in post.culprit)
    assert post.best == 2
