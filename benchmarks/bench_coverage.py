"""Exact coverage of the displayed interval, and of the alternatives, over a fine grid of p.

For n boots and a true rate p, the coverage of an interval method is
``sum_k P(K = k | n, p) [p in CI(k, n)]``, computed exactly (no simulation) for every p of
the grid. Printed per n (20, 50, 200 by default): the minimum coverage over the rare range
(0 < p <= ``--rare``, default 0.2) and over (0, 1), where the minimum sits, and the mean
width of the intervals for 0 <= k <= n/5 relative to Wilson's. The harness shows
``harness.stats.display_interval`` (two-sided Clopper-Pearson); the target is >= 93% at
every p of the rare range.

Run: ``python benchmarks/bench_coverage.py`` (``--quick``: a coarser grid).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
from scipy import stats as sps

from harness.stats import display_interval

Z = float(sps.norm.ppf(0.975))
Method = Callable[[int], tuple[np.ndarray, np.ndarray]]


def wilson(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(n + 1)
    p = k / n
    c = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    h = Z * np.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return np.clip(c - h, 0, 1), np.clip(c + h, 0, 1)


def wilson_bcd(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Brown, Cai & DasGupta (2001): Wilson with Poisson lower bounds for x = 1, 2 (n <= 50)
    or x = 1, 2, 3 (n > 50), and the mirror image at the top."""
    lo, hi = wilson(n)
    for x in range(1, (2 if n <= 50 else 3) + 1):
        lo[x] = sps.chi2.ppf(0.05, 2 * x) / (2 * n)
        hi[n - x] = 1 - lo[x]
    return lo, hi


def agresti_coull(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(n + 1)
    nt = n + Z * Z
    pt = (k + Z * Z / 2) / nt
    h = Z * np.sqrt(pt * (1 - pt) / nt)
    return np.clip(pt - h, 0, 1), np.clip(pt + h, 0, 1)


def jeffreys(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(n + 1)
    lo = sps.beta.ppf(0.025, k + 0.5, n - k + 0.5)
    hi = sps.beta.ppf(0.975, k + 0.5, n - k + 0.5)
    lo[0], hi[n] = 0.0, 1.0
    return lo, hi


def shown(n: int) -> tuple[np.ndarray, np.ndarray]:
    ci = [display_interval(k, n) for k in range(n + 1)]
    return np.array([c.low for c in ci]), np.array([c.high for c in ci])


METHODS: tuple[tuple[str, Method], ...] = (
    ("wilson (before)", wilson),
    ("wilson + BCD", wilson_bcd),
    ("agresti-coull", agresti_coull),
    ("jeffreys", jeffreys),
    ("clopper-pearson (shown)", shown),
)


def coverage(n: int, lo: np.ndarray, hi: np.ndarray, grid: np.ndarray) -> np.ndarray:
    k = np.arange(n + 1)
    out = np.zeros(grid.size)
    for s in range(0, grid.size, 4000):  # bounded memory
        g = grid[s:s + 4000]
        pmf = sps.binom.pmf(k[None, :], n, g[:, None])
        inside = (lo[None, :] <= g[:, None]) & (g[:, None] <= hi[None, :])
        out[s:s + 4000] = (pmf * inside).sum(axis=1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[20, 50, 200])
    ap.add_argument("--points", type=int, default=100_000, help="grid points over (0, 1)")
    ap.add_argument("--rare", type=float, default=0.2)
    ap.add_argument("--quick", action="store_true", help="10,000 grid points")
    args = ap.parse_args(argv)
    points = 10_000 if args.quick else args.points
    print("command: python " + " ".join([sys.argv[0], *(argv if argv is not None
                                                         else sys.argv[1:])]))
    print(f"exact coverage of 95% intervals on {points} evenly spaced p in (0, 1); rare "
          f"range 0 < p <= {args.rare}; target: >= 93% at every p of the rare range")
    grid = np.linspace(0.0, 1.0, points + 2)[1:-1]
    rare = grid <= args.rare
    t0 = time.perf_counter()
    head = (f"{'n':>4} {'method':<24} {'min rare':>8} {'at p':>8} {'min (0,1)':>9} "
            f"{'at p':>8} {'width/Wilson':>12}  target")
    print(head)
    print("-" * len(head))
    ok = True
    for n in args.n:
        w_lo, w_hi = wilson(n)
        small = np.arange(n + 1) <= n // 5
        w_width = (w_hi - w_lo)[small].mean()
        for name, method in METHODS:
            lo, hi = method(n)
            cov = coverage(n, lo, hi, grid)
            r = cov[rare]
            i, j = int(r.argmin()), int(cov.argmin())
            width = (hi - lo)[small].mean() / w_width
            target = ""
            if "shown" in name:
                met = r.min() >= 0.93
                ok &= bool(met)
                target = "met" if met else "MISSED"
            print(f"{n:>4} {name:<24} {r.min():>8.4f} {grid[rare][i]:>8.5f} "
                  f"{cov.min():>9.4f} {grid[j]:>8.5f} {width:>12.3f}  {target}")
    print(f"elapsed {time.perf_counter() - t0:.1f} s")
    print("target (displayed interval >= 93% at every p of the rare range): "
          + ("met" if ok else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
