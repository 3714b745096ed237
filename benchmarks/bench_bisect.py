"""Bayesian bisection against simulated Bernoulli builds: boots, accuracy, rounds, calibration.

The issue-15 setting: 64 builds, the culprit uniform over 1..63, 8 slots (a round may probe
up to 8 builds, ``harness.bisect.rounds``), stop at posterior 0.95. Every campaign starts
as one does in the lab: the night that found the failure recorded ``--seed-boots`` (50)
boots of the known-good and the known-bad build, and the store holds ``--history`` nights
x ``--per-night`` boots (10 x 50 = 500) of the known-good build in that cell. The history's
boots are data of build 0 (``use_recorded``) and, grouped by night, the sample the
empirical-Bayes prior is fitted to (``harness.bisect.prior``: the good builds' rate prior
and the baseline model's weight). One lab history per (case, seed), ``--reps`` campaigns
on it, ``--seeds`` seeds.

Printed per case, pooled over seeds: mean boots (standard error), the information floor
(log2(63) bits over the capacity of the build's failure channel: the best any strategy
does on average when the rates are known), the ratio, correct culprits (Clopper-Pearson
95%), rounds per campaign, the lowest and highest ratio and accuracy of a single seed, and
calibration: of the campaigns that stopped claiming >= 0.95, the share that was right.
Informational rows: the fixed priors of issue 9 with no history, and a classic bisect with
K boots per step calibrated on the bad build.

Run: ``python benchmarks/bench_bisect.py`` (``--quick``: 1 seed x 40 campaigns per case).
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

from harness.bisect.model import Priors
from harness.bisect.prior import empirical_priors
from harness.bisect.simulate import run_rounds

N_BUILDS = 64
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Case:
    name: str
    good: float  # failure rate of good builds
    bad: float  # failure rate of bad builds
    history: bool = True  # the store holds the known-good build's earlier nights (EB)
    slots: int = 8
    target: bool = True  # the targets apply


CASES = (
    Case("clean 0.05", 0.0, 0.05),
    Case("clean 0.2", 0.0, 0.2),
    Case("clean 0.6", 0.0, 0.6),
    Case("baseline 0.02/0.2", 0.02, 0.2),
    # informational: no earlier nights in the store, the fixed priors of issue 9
    Case("clean 0.05", 0.0, 0.05, history=False, target=False),
    Case("baseline 0.02/0.2", 0.02, 0.2, history=False, target=False),
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


def run_chunk(args: tuple[Case, int, int, int, int, int]) -> dict[str, object]:
    """``count`` campaigns of one case on one simulated lab history (one seed)."""
    case, seed, count, seed_boots, nights, per_night = args
    rng = np.random.default_rng(seed)
    n = N_BUILDS
    hist = rng.binomial(per_night, case.good, size=nights if case.history else 0)
    fit = empirical_priors([(per_night, int(x)) for x in hist])
    priors = fit.priors if case.history else Priors()
    culprit = rng.integers(1, n, size=count)
    rates = np.where(np.arange(n)[None, :] < culprit[:, None], case.good, case.bad)
    k = np.zeros((count, n), dtype=np.int64)
    f = np.zeros((count, n), dtype=np.int64)
    for i in (0, n - 1):
        k[:, i] = seed_boots
        f[:, i] = rng.binomial(seed_boots, rates[:, i])
    k[:, 0] += int(per_night * hist.size)
    f[:, 0] += int(hist.sum())
    res = run_rounds(rates, rng, CONFIDENCE, case.slots, boots=k, failures=f, priors=priors)
    return {"boots": list(res.boots), "correct": [int(c == t) for c, t in
                                                  zip(res.culprit, culprit, strict=True)],
            "rounds": list(res.rounds), "reached": [int(x) for x in res.reached],
            "prior": fit.describe() if case.history else "fixed priors (issue 9)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200, help="campaigns per case and seed")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=2026, help="first seed")
    ap.add_argument("--seed-boots", type=int, default=50,
                    help="boots of the known-good and known-bad build from the night that "
                         "found the failure")
    ap.add_argument("--history", type=int, default=10,
                    help="earlier nights of the known-good build in the store")
    ap.add_argument("--per-night", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="1 seed x 40 campaigns per case")
    args = ap.parse_args(argv)
    reps, seeds = (40, 1) if args.quick else (args.reps, args.seeds)
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None
                                                         else sys.argv[1:])]))
    print(f"{N_BUILDS} builds, culprit uniform, 8 slots, stop at posterior >= {CONFIDENCE}; "
          f"{seeds} seeds x {reps} campaigns per case; seeded with {args.seed_boots} boots "
          f"of the known-good and known-bad build; history: {args.history} nights x "
          f"{args.per_night} boots of the known-good build; {args.processes} processes")
    t0 = time.perf_counter()
    jobs: list[tuple[Case, list[Future[dict[str, object]]]]] = []
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        for ci, case in enumerate(CASES):
            fs = [pool.submit(run_chunk, (case, args.seed + 7919 * s + 104729 * ci, reps,
                                          args.seed_boots, args.history, args.per_night))
                  for s in range(seeds)]
            jobs.append((case, fs))
        results = [(case, [fut.result() for fut in fs]) for case, fs in jobs]
    elapsed = time.perf_counter() - t0
    head = (f"{'case':<18} {'store':<8} {'n':>5} {'boots':>7} {'+-se':>5} {'floor':>6} "
            f"{'ratio':>5} {'seeds':>10} {'correct':>7} {'95% CI':>13} {'seeds':>11} "
            f"{'rounds':>6} {'calib':>6} {'K':>3} {'K-boots':>7}  target")
    print(head)
    print("-" * len(head))
    ok_all = True
    claims = right = 0
    for case, per_seed in results:
        boots = np.concatenate([np.array(r["boots"], dtype=float) for r in per_seed])
        correct = np.concatenate([np.array(r["correct"]) for r in per_seed])
        reached = np.concatenate([np.array(r["reached"]) for r in per_seed])
        rounds = np.concatenate([np.array(r["rounds"]) for r in per_seed])
        fl = floor_boots(case.good, case.bad)
        ratio = boots.mean() / fl
        ratios = [np.mean(r["boots"]) / fl for r in per_seed]  # type: ignore[arg-type]
        accs = [np.mean(r["correct"]) for r in per_seed]  # type: ignore[arg-type]
        ci = binomtest(int(correct.sum()), correct.size).proportion_ci(0.95, method="exact")
        acc = correct.mean()
        calib = correct[reached == 1].mean() if reached.any() else float("nan")
        if case.good == 0:
            kk, _, kboots = fixed_k_calibrated(case.good, case.bad)
            fixed = f"{kk:>3} {kboots:>7.1f}"
        else:
            fixed = f"{'-':>3} {'-':>7}"
        if case.target:
            claims += int(reached.sum())
            right += int(correct[reached == 1].sum())
            met = acc >= 0.95 and (case.good > 0 or ratio <= 1.3)
            ok_all &= bool(met)
            verdict = ("met" if met else "MISSED") + (
                " (>=95% correct)" if case.good > 0 else " (<=1.3x floor, >=95% correct)")
        else:
            verdict = "-"
        print(f"{case.name:<18} {'history' if case.history else 'none':<8} {boots.size:>5} "
              f"{boots.mean():>7.1f} {boots.std(ddof=1) / math.sqrt(boots.size):>5.1f} "
              f"{fl:>6.1f} {ratio:>5.2f} {min(ratios):>4.2f}-{max(ratios):<5.2f} {acc:>7.3f} "
              f"{ci.low:>6.3f}-{ci.high:<6.3f} {min(accs):>5.3f}-{max(accs):<5.3f} "
              f"{rounds.mean():>6.1f} {calib:>6.3f} {fixed}  {verdict}")
    for case, per_seed in results:
        print(f"prior, {case.name}, {'history' if case.history else 'none'}, first seed: "
              f"{per_seed[0]['prior']}")
    cal = right / claims if claims else float("nan")
    cal_ci = binomtest(right, claims).proportion_ci(0.95, method="exact") if claims else None
    print(f"calibration over the target cases: {right}/{claims} claims of >= 0.95 right = "
          f"{cal:.3f}" + (f" [{cal_ci.low:.3f}, {cal_ci.high:.3f}]" if cal_ci else "")
          + (" (met: >= 0.95)" if cal >= 0.95 else " (MISSED: < 0.95)"))
    print(f"elapsed {elapsed:.1f} s wall")
    print("targets: " + ("all met" if ok_all and cal >= 0.95 else "NOT all met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
