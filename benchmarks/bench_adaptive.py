"""Boots saved by adaptive stopping (decided on the confidence sequence per cell) against
fixed N, on the eas-66611 simulated model (its true rates per cell).

For each of the 48 cells and each replication, boot outcomes are drawn from the sim
model (``harness.sim.model.fate``, guest outcomes); fixed N judges the cell after N boots
(``harness.stats.judge``), adaptive stops at its decision (``harness.adaptive``) or at N
and is judged on the confidence sequence (``judge_cell(..., stopped_early=True)``).
Prints total boots, boots saved, how often the two decisions agree, how often each
matches the truth, and the coverage of the interval reported after an adaptive stop
(confidence sequence) against a plain Wilson interval at the same stop.

    python benchmarks/bench_adaptive.py [--reps 20] [--boots 100] [--max 0] [--rule-out R]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from harness.adaptive import AdaptiveSettings, cell_decision, confidence_sequence
from harness.matrix import load_matrix
from harness.model import Expectation, Outcome
from harness.sim.model import fate, load_sim_model, true_rates
from harness.stats import CellCounts, judge, judge_cell, wilson

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=20, help="replications (seeds) per cell")
    ap.add_argument("--boots", type=int, default=100, help="fixed N per cell")
    ap.add_argument("--max", type=float, default=None,
                    help="maximum acceptable rate for both classes (default: the matrix's)")
    ap.add_argument("--min-boots", type=int, default=5)
    ap.add_argument("--rule-out", type=float, default=None,
                    help="with maximum 0: the rate clean cells must rule out to pass")
    a = ap.parse_args()
    load = os.getloadavg()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"python {platform.python_version()}, load average {load[0]:.1f}")
    m = load_matrix(ROOT / "matrices" / "eas-66611-sim.yaml")
    model = load_sim_model(m.lab)
    settings = AdaptiveSettings(min_boots=a.min_boots)
    totals = {"fixed": 0, "adaptive": 0}
    agree = right_fixed = right_adaptive = decided_early = 0
    cover_cs = cover_wilson = stops = 0
    t0 = time.perf_counter()
    for cell in m.cells:
        if a.max is not None or a.rule_out is not None:
            mx = a.max if a.max is not None else cell.expect.vcpu_offline
            cell = replace(cell, expect=Expectation(vcpu_offline=mx, boot_failure=mx,
                                                    confidence=cell.expect.confidence,
                                                    rule_out=a.rule_out))
        attrs = m.lab.host(cell.host).attributes
        truth = true_rates(model, cell.host, attrs, cell.guest, cell.vcpus)
        bad = any(truth[o] > (mx or 0.0) for o, mx in (
            ("vcpu_offline", cell.expect.vcpu_offline),
            ("boot_failure", cell.expect.boot_failure)) if mx is not None)
        for rep in range(a.reps):
            outcomes = [fate(model, seed=1000 + rep, host=cell.host, attrs=attrs,
                             guest=cell.guest, vcpus=cell.vcpus, index=i,
                             infra=False).outcome for i in range(a.boots)]
            fixed = judge(_counts(outcomes), cell.expect).status
            stop, decision = a.boots, None
            for n in range(1, a.boots + 1):
                decision = cell_decision(_counts(outcomes[:n]), cell, settings)
                if decision is not None:
                    stop = n
                    break
            adaptive = (judge_cell(_counts(outcomes[:stop]), cell.expect, True).status
                        if decision else judge(_counts(outcomes[:stop]), cell.expect).status)
            totals["fixed"] += a.boots
            totals["adaptive"] += stop
            decided_early += stop < a.boots
            agree += adaptive == fixed
            good = ("pass", "clean")  # clean: maximum 0, no failure seen
            right_fixed += fixed == "fail" if bad else fixed in good
            right_adaptive += adaptive == "fail" if bad else adaptive in good
            if decision is not None:
                c = _counts(outcomes[:stop])
                for o in (Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE):
                    k, p = c.k(o), truth[o.value]
                    lo, hi = confidence_sequence(k, c.n, cell.expect.confidence)
                    w = wilson(k, c.n, cell.expect.confidence)
                    stops += 1
                    cover_cs += lo <= p <= hi
                    cover_wilson += w.low <= p <= w.high
    runs = len(m.cells) * a.reps
    saved = totals["fixed"] - totals["adaptive"]
    maxima = "from the matrix (0)" if a.max is None else f"{a.max:g}"
    print(f"{len(m.cells)} cells x {a.reps} replications, fixed N = {a.boots}, maxima "
          f"{maxima}, rule out {a.rule_out}, confidence sequence, min "
          f"{settings.min_boots} boots "
          f"({time.perf_counter() - t0:.1f}s)")
    print(f"  boots: fixed {totals['fixed']}, adaptive {totals['adaptive']}, saved {saved} "
          f"({100 * saved / totals['fixed']:.1f}%); {decided_early}/{runs} cell runs "
          "stopped early")
    print(f"  decisions equal to fixed N: {agree}/{runs} ({100 * agree / runs:.1f}%)")
    print(f"  decisions right (true rate vs maximum): fixed {right_fixed}/{runs}, "
          f"adaptive {right_adaptive}/{runs}")
    if stops:
        print(f"  interval coverage at an adaptive stop ({stops} rates): confidence sequence "
              f"{100 * cover_cs / stops:.1f}%, plain Wilson {100 * cover_wilson / stops:.1f}%")


def _counts(outcomes: list[Outcome]) -> CellCounts:
    return CellCounts(ok=outcomes.count(Outcome.OK),
                      vcpu_offline=outcomes.count(Outcome.VCPU_OFFLINE),
                      boot_failure=outcomes.count(Outcome.BOOT_FAILURE))


if __name__ == "__main__":
    main()
