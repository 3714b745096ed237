"""Bayesian bisection against simulated Bernoulli builds: boots and accuracy.

For 64 builds, the culprit uniform over 1..63, stop at posterior 0.95, every case repeated
``--reps`` times (seeded) across ``--processes`` worker processes. Printed per case: mean
boots (with its standard error), the information floor (log2(63) bits over the capacity of
the build's failure channel: the best any strategy can do on average when the rates are
known), the ratio, the share of correct culprits (with a Clopper-Pearson 95% interval), and
a classic bisect with a fixed K boots per step, K calibrated on the bad build's rate.

Scenarios:
* ``seeded``: as a campaign starts after the run that found the failure: the known-good and
  known-bad builds carry ``--seed-boots`` recorded boots each (not counted in the campaign's
  boots). This is how ``harness bisect`` runs (it reads every recorded boot).
* ``cold``: nothing recorded; the failure rate is learned during the campaign.

Run: ``python benchmarks/bench_bisect.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.stats import binomtest

from harness.bisect.model import DEFAULT_PRIORS, ModelChoice, Priors
from harness.bisect.simulate import run_campaign, run_many

N_BUILDS = 64
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Case:
    name: str
    good: float  # failure rate of good builds
    bad: float  # failure rate of bad builds
    seeded: bool
    model: ModelChoice = "auto"
    slots: int = 1
    reps_factor: float = 1.0  # share of --reps (for the slower, informational rows)
    target: bool = True  # the targets apply
    baseline_weight: float = DEFAULT_PRIORS.baseline  # prior P(model B) in auto


CASES = (
    Case("clean 0.05", 0.0, 0.05, True),
    Case("clean 0.2", 0.0, 0.2, True),
    Case("clean 0.6", 0.0, 0.6, True),
    Case("baseline 0.02/0.2", 0.02, 0.2, True),
    # informational: the campaign says good builds never fail (model: clean)
    Case("clean 0.05", 0.0, 0.05, True, model="clean", target=False),
    Case("clean 0.2", 0.0, 0.2, True, model="clean", target=False),
    Case("clean 0.6", 0.0, 0.6, True, model="clean", target=False),
    # informational: nothing recorded before the campaign
    Case("clean 0.05", 0.0, 0.05, False, target=False),
    Case("clean 0.2", 0.0, 0.2, False, target=False),
    Case("clean 0.6", 0.0, 0.6, False, target=False),
    Case("baseline 0.02/0.2", 0.02, 0.2, False, target=False),
    # informational: rounds of 8 parallel boots
    Case("clean 0.2", 0.0, 0.2, True, slots=8, reps_factor=0.2, target=False),
    # informational: the trade-off between the two targets, by the prior weight of model B
    *(Case(name, good, bad, True, target=False, baseline_weight=w)
      for w in (0.25, 0.5, 0.9) for name, good, bad in (("clean 0.05", 0.0, 0.05),
                                                        ("baseline 0.02/0.2", 0.02, 0.2))),
)


def h2(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def capacity(good: float, bad: float) -> float:
    """Capacity (bits per boot) of the channel 'is this build bad?' -> 'did the boot fail?'."""
    pis = np.linspace(0.0, 1.0, 20001)
    out = np.array([h2(pi * bad + (1 - pi) * good) for pi in pis])
    out -= pis * h2(bad) + (1 - pis) * h2(good)
    return float(out.max())


def floor_boots(good: float, bad: float, n: int = N_BUILDS) -> float:
    return math.log2(n - 1) / capacity(good, bad)


def fixed_k(good: float, bad: float, k: int, n: int = N_BUILDS) -> tuple[float, float]:
    """Classic bisect booting each midpoint ``k`` times, 'bad' if any boot failed: exact
    accuracy and mean boots over a uniform culprit."""
    p_bad, p_good = 1 - (1 - bad) ** k, 1 - (1 - good) ** k

    @cache
    def rec(lo: int, hi: int, c: int) -> tuple[float, float]:
        if hi - lo <= 1:
            return (1.0 if hi == c else 0.0), 0.0
        mid = (lo + hi) // 2
        p = p_bad if mid >= c else p_good
        a, b = rec(lo, mid, c), rec(mid, hi, c)
        return p * a[0] + (1 - p) * b[0], k + p * a[1] + (1 - p) * b[1]

    res = [rec(0, n - 1, c) for c in range(1, n)]
    return sum(r[0] for r in res) / len(res), sum(r[1] for r in res) / len(res)


def fixed_k_calibrated(good: float, bad: float, n: int = N_BUILDS) -> tuple[int, float, float]:
    """K with a miss chance of at most 5% / ceil(log2(n-1)) per step on the bad build (the
    usual "run it K times" rule), then its exact accuracy and mean boots."""
    steps = math.ceil(math.log2(n - 1))
    k = math.ceil(math.log((1 - CONFIDENCE) / steps) / math.log(1 - bad))
    acc, boots = fixed_k(good, bad, k, n)
    return k, acc, boots


def run_chunk(args: tuple[Case, int, int, int]) -> list[tuple[int, bool, int]]:
    """(campaign boots, culprit correct, rounds) for ``count`` seeded campaigns."""
    case, seed, count, seed_boots = args
    rng = np.random.default_rng(seed)
    priors = Priors(baseline=case.baseline_weight)
    n = N_BUILDS
    culprit = rng.integers(1, n, size=count)
    rates = np.where(np.arange(n)[None, :] < culprit[:, None], case.good, case.bad)
    k = np.zeros((count, n), dtype=np.int64)
    f = np.zeros((count, n), dtype=np.int64)
    if case.seeded:
        for i in (0, n - 1):
            k[:, i] = seed_boots
            f[:, i] = rng.binomial(seed_boots, rates[:, i])
    if case.slots == 1:  # all campaigns in lockstep, one numpy pass per boot
        res = run_many(rates, rng, CONFIDENCE, boots=k, failures=f, model=case.model,
                       priors=priors)
        return [(b, c == int(t), b) for b, c, t in zip(res.boots, res.culprit, culprit,
                                                        strict=True)]
    out = []
    for j in range(count):
        one = run_campaign(rates[j], rng, CONFIDENCE, slots=case.slots, model=case.model,
                           boots=k[j], failures=f[j], priors=priors)
        out.append((one.boots, one.culprit == int(culprit[j]), one.rounds))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=500, help="campaigns per case (default 500)")
    ap.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--seed-boots", type=int, default=100,
                    help="recorded boots of each known build in the seeded scenario")
    ap.add_argument("--quick", action="store_true", help="40 campaigns per case")
    args = ap.parse_args(argv)
    reps = 40 if args.quick else args.reps
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None
                                                         else sys.argv[1:])]))
    print(f"{N_BUILDS} builds, culprit uniform, stop at posterior >= {CONFIDENCE}, "
          f"{reps} campaigns per case, {args.processes} processes, seed {args.seed}, "
          f"seeded = {args.seed_boots} recorded boots on each known build")
    t0 = time.perf_counter()
    rows: list[tuple[Case, list[tuple[int, bool, int]]]] = []
    futures: list[tuple[Case, list[Future[list[tuple[int, bool, int]]]]]] = []
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        for ci, case in enumerate(CASES):
            r = max(10, int(reps * case.reps_factor))
            chunks = 4 * args.processes
            sizes = [r // chunks + (1 if i < r % chunks else 0) for i in range(chunks)]
            jobs = [(case, args.seed * 1_000_003 + 1000 * ci + i, m, args.seed_boots)
                    for i, m in enumerate(sizes) if m]
            futures.append((case, [pool.submit(run_chunk, j) for j in jobs]))
        for case, fs in futures:
            rows.append((case, [x for fut in fs for x in fut.result()]))
    elapsed = time.perf_counter() - t0
    head = (f"{'case':<18} {'model':<6} {'P(B)':>4} {'start':<7} {'slots':>5} {'n':>4} "
            f"{'boots':>8} {'+-se':>5} {'floor':>6} {'ratio':>5} {'correct':>7} {'95% CI':>13} "
            f"{'rounds':>6} {'K':>4} {'K-boots':>7} {'K-acc':>5}  target")
    print(head)
    print("-" * len(head))
    ok_all = True
    for case, res in rows:
        boots = np.array([b for b, _, _ in res], dtype=float)
        correct = sum(c for _, c, _ in res)
        rounds = np.mean([r for _, _, r in res])
        ci = binomtest(correct, len(res)).proportion_ci(0.95, method="exact")
        fl = floor_boots(case.good, case.bad)
        ratio = boots.mean() / fl
        if case.good == 0:
            k, kacc, kboots = fixed_k_calibrated(case.good, case.bad)
            fixed = f"{k:>4} {kboots:>7.1f} {kacc:>5.3f}"
        else:  # "any failure means bad" is no rule when good builds fail too
            fixed = f"{'-':>4} {'-':>7} {'-':>5}"
        acc = correct / len(res)
        if case.target:
            met = acc >= 0.95 and (case.good > 0 or ratio <= 1.3)
            ok_all &= met
            verdict = "met" if met else "MISSED"
            verdict += " (>=95% correct)" if case.good > 0 else " (<=1.3x floor, >=95%)"
        else:
            verdict = "-"
        pb = f"{case.baseline_weight:.2f}" if case.model == "auto" else "-"
        print(f"{case.name:<18} {case.model:<6} {pb:>4} {'seeded' if case.seeded else 'cold':<7} "
              f"{case.slots:>5} "
              f"{len(res):>4} {boots.mean():>8.1f} {boots.std(ddof=1) / math.sqrt(len(res)):>5.1f}"
              f" {fl:>6.1f} {ratio:>5.2f} {acc:>7.3f} {ci.low:>6.3f}-{ci.high:<6.3f}"
              f" {rounds:>6.1f} {fixed}  {verdict}")
    print(f"elapsed {elapsed:.1f} s wall")
    print("targets (seeded, 1 slot): " + ("all met" if ok_all else "NOT all met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
