"""The nightly rule over simulated nights: its false-alarm rate on identical nights, its
power on an injected regression, and the first-bad-night test's, on the eas-66611
simulated lab (48 cells, its true rates).

Each night draws every boot the way the simulated lab does (``harness.sim.model.fate``'s
logic: a failure draw, a vCPU-offline draw, the panic share and kind), vectorised with
NumPy for speed, and gives each failing boot the signatures the **real classifier**
finds in the sim's kernel text for that kind of boot (``harness.sim.text`` +
``harness.classify``, memoised per kind). Then, exactly as the harness does:

- the nightly rule (``harness.history.regress.regressions``) compares each night with
  the night before (every night complete, so that is its baseline); a night "alarms"
  when any cell is a new regression;
- the history (``harness.history.nights.history``: change-point test per cell, Holm
  across cells) over the ten nights names first bad nights.

Scenarios: ``identical`` (ten identical nights), ``injected`` (from night 6: a clean
cell gets 5% vCPU offline, a 7% cell 20%, a clean cell 5% panicking boot failures), and
``power`` (a cell at 2% going to 10% on night 2, 200 boots per cell: the nightly rule
over the whole matrix against one one-sided test alone).

    python benchmarks/bench_nights.py [--seeds 200] [--nights 10] [--boots 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from harness.classify import classify
from harness.history.nights import NightCell, history
from harness.history.regress import CellSnapshot, one_sided_p, regressions
from harness.matrix import load_matrix
from harness.model import Cell, Outcome
from harness.sim.model import Fate, Rule, SimModel, load_sim_model, rule_for
from harness.sim.text import console, cpu_list, dmesg, online_cpus
from harness.stats import CellCounts, exact_test, judge

ROOT = Path(__file__).resolve().parents[1]
RELEASES: dict[str, str] = {}

# name -> (cell id, rule from night 6 on)
INJECTED = {
    "clean -> 5% vCPU offline": ("node-3/es10/vcpu8", Rule(vcpu_offline=0.05)),
    "7% -> 20% vCPU offline": ("node-3/es14/vcpu4", Rule(vcpu_offline=0.2, boot_failure=0.01,
                                                          offline_cpus=(1, 1))),
    "clean -> 5% panics": ("node-3/kylin/vcpu16", Rule(boot_failure=0.05, panic=1.0)),
}


@cache
def signatures(release: str, vcpus: int, outcome: str, panic: bool, kind: int,
               offline: bool) -> tuple[str, ...]:
    """What the real classifier finds in the sim's text for this kind of boot."""
    cpus = (1,) if offline and vcpus > 1 else ()
    if outcome == "vcpu_offline":
        f = Fate(Outcome.VCPU_OFFLINE, offline_cpus=cpus, entropy=1)
        c = classify(dmesg(release, vcpus, f), expected_cpus=vcpus,
                     online=cpu_list(online_cpus(vcpus, f)))
    else:
        f = Fate(Outcome.BOOT_FAILURE, offline_cpus=cpus, failure="panic" if panic else "silent",
                 panic_kind=kind, entropy=1)
        c = classify(console(release, vcpus, f), expected_cpus=vcpus)
    return tuple(sorted({s.title for s in c.signature_list()}))


def draw_cell(rng: np.random.Generator, cell: Cell, rule: Rule | None, model: SimModel,
              boots: int) -> CellSnapshot:
    """One cell's night, boot by boot as ``fate`` decides (guest outcomes only)."""
    if rule is None:
        return CellSnapshot(cell.id, CellCounts(ok=boots), judge(CellCounts(ok=boots),
                                                                 cell.expect).status)
    u = rng.random((4, boots))
    offline = (u[1] < rule.vcpu_offline) if cell.vcpus > 1 else np.zeros(boots, bool)
    fail = u[0] < rule.boot_failure
    share = rule.panic if rule.panic is not None else model.panic
    panic = u[2] < share
    kind = (u[3] * 1000).astype(int) % 3
    sigs: Counter[str] = Counter()
    release = RELEASES[cell.guest]
    n_off = 0
    for i in np.flatnonzero(fail | offline):
        if fail[i]:
            titles = signatures(release, cell.vcpus, "boot_failure", bool(panic[i]),
                                int(kind[i]), bool(offline[i]))
        else:
            n_off += 1
            titles = signatures(release, cell.vcpus, "vcpu_offline", False, 0, True)
        sigs.update(titles)
    n_fail = int(fail.sum())
    counts = CellCounts(ok=boots - n_fail - n_off, vcpu_offline=n_off, boot_failure=n_fail)
    return CellSnapshot(cell.id, counts, judge(counts, cell.expect).status,
                        tuple(sorted(sigs.items())))


def night(rng: np.random.Generator, cells: Sequence[Cell], model: SimModel, boots: int,
          overrides: Mapping[str, Rule] = {}) -> list[CellSnapshot]:
    out = []
    for c in cells:
        rule = overrides.get(c.id) or rule_for(model, c.host, dict(c.host_attrs), c.guest,
                                               c.vcpus)
        out.append(draw_cell(rng, c, rule, model, boots))
    return out


def run_nights(seed: int, cells: Sequence[Cell], model: SimModel, nights: int, boots: int,
               inject: Mapping[str, Rule], from_night: int) -> tuple[list[Any], Any]:
    rng = np.random.default_rng(seed)
    snaps = [night(rng, cells, model, boots, inject if i + 1 >= from_night else {})
             for i in range(nights)]
    regs = [regressions(snaps[i - 1], snaps[i], alpha=0.05) for i in range(1, nights)]
    per_cell = [(c.id, [NightCell(s[j].counts.vcpu_offline + s[j].counts.boot_failure,
                                  s[j].counts.n, None, 0.0, 1.0, s[j].verdict)
                        for s in snaps]) for j, c in enumerate(cells)]
    return regs, history("bench", [], per_cell)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--boots", type=int, default=100)
    ap.add_argument("--power-seeds", type=int, default=400)
    a = ap.parse_args()
    m = load_matrix(ROOT / "matrices" / "eas-66611-sim.yaml")
    model = load_sim_model(m.lab)
    RELEASES.update({g: spec.kernel_release or "" for g, spec in m.lab.spec.guests.items()})
    cells = list(m.cells)
    print(f"command: python benchmarks/bench_nights.py --seeds {a.seeds} --nights {a.nights} "
          f"--boots {a.boots} --power-seeds {a.power_seeds}")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(f"matrix: {m.name} ({len(cells)} cells, true rates of {m.lab.name}'s sim model), "
          f"{a.boots} boots per cell per night, alpha 0.05\n")

    t0 = time.perf_counter()
    alarms = total = 0
    reasons: Counter[str] = Counter()
    false_first = 0
    for s in range(a.seeds):
        regs, h = run_nights(s, cells, model, a.nights, a.boots, {}, a.nights + 1)
        for r in regs:
            total += 1
            alarms += r.alarm
            for c in r.new_regressions:
                for why in c.reasons:
                    reasons[why.split(":")[0].split(" ")[0] if why.startswith("verdict")
                            else "new signature" if why.startswith("new signature")
                            else "rate higher"] += 1
        false_first += any(c.first_bad is not None for c in h.cells)
        print(f"  seed {s + 1}/{a.seeds}: {alarms}/{total} nights alarmed so far",
              file=sys.stderr, flush=True)
    rate = alarms / total
    print(f"identical nights ({a.seeds} seeds x {a.nights} nights, {total} night-to-night "
          f"comparisons, {time.perf_counter() - t0:.0f} s):")
    print(f"  nights with any alarm (false alarms): {alarms}/{total} = {100 * rate:.2f}% "
          f"(goal <= 5%)  reasons: {dict(reasons) or 'none'}")
    print(f"  histories naming any first bad night: {false_first}/{a.seeds} = "
          f"{100 * false_first / a.seeds:.1f}%\n")

    t0 = time.perf_counter()
    inject = {cid: rule for cid, rule in INJECTED.values()}
    flagged: Counter[str] = Counter()
    exact: Counter[str] = Counter()
    other_first = later_alarms = later_total = 0
    for s in range(a.seeds):
        regs, h = run_nights(10_000 + s, cells, model, a.nights, a.boots, inject, 6)
        r6 = regs[6 - 2]  # night 6 against night 5
        new = {c.cell_id for c in r6.new_regressions}
        for name, (cid, _) in INJECTED.items():
            flagged[name] += cid in new
            first = next(c for c in h.cells if c.cell_id == cid).first_bad
            exact[name] += first == 5
        other_first += any(c.first_bad is not None for c in h.cells if c.cell_id not in inject)
        for r in regs[6 - 1:]:  # nights 7.. against the night before: all bad already
            later_total += 1
            later_alarms += r.alarm
    print(f"injected regression from night 6 ({a.seeds} seeds, "
          f"{time.perf_counter() - t0:.0f} s):")
    for name, (cid, _) in INJECTED.items():
        print(f"  {name:<26} {cid:<22} nightly rule flags it on night 6: "
              f"{100 * flagged[name] / a.seeds:5.1f}%   history: first bad = night 6: "
              f"{100 * exact[name] / a.seeds:5.1f}%")
    print(f"  histories naming a first bad night in another cell: {other_first}/{a.seeds} = "
          f"{100 * other_first / a.seeds:.1f}%")
    print(f"  alarms on nights 7-{a.nights} (nothing new): {later_alarms}/{later_total} = "
          f"{100 * later_alarms / max(1, later_total):.2f}%\n")

    t0 = time.perf_counter()
    target = "node-3/centos-8.1/vcpu8"
    base, bad = Rule(vcpu_offline=0.02), Rule(vcpu_offline=0.10)
    rule_hits = alone_hits = fisher_hits = hist_exact = hist_any = 0
    fam: list[int] = []
    for s in range(a.power_seeds):
        rng = np.random.default_rng(20_000 + s)
        snaps = [night(rng, cells, model, 200, {target: base if i < 5 else bad})
                 for i in range(a.nights)]
        r = regressions(snaps[4], snaps[5], alpha=0.05)
        fam.append(r.family)
        rule_hits += any(c.cell_id == target for c in r.new_regressions)
        j = next(k for k, c in enumerate(cells) if c.id == target)
        a1, b1 = snaps[4][j].counts, snaps[5][j].counts
        p, _ = exact_test(b1.vcpu_offline, b1.n, a1.vcpu_offline, a1.n, "greater")
        alone_hits += p < 0.05
        fisher_hits += one_sided_p(b1.vcpu_offline, b1.n, a1.vcpu_offline, a1.n) < 0.05
        per_cell = [(c.id, [NightCell(x[k].counts.vcpu_offline + x[k].counts.boot_failure,
                                      x[k].counts.n, None, 0.0, 1.0, x[k].verdict)
                            for x in snaps]) for k, c in enumerate(cells)]
        first = next(c for c in history("bench", [], per_cell).cells if c.cell_id == target)
        hist_any += first.first_bad is not None
        hist_exact += first.first_bad == 5
    n = a.power_seeds
    print(f"power on 2% -> 10% vCPU offline from night 6, 200 boots per cell ({target}, "
          f"{n} seeds, {time.perf_counter() - t0:.0f} s):")
    print(f"  nightly rule, night 6 against night 5, over the 48-cell matrix (Holm over "
          f"{np.mean(fam):.1f} tests that can be significant): {100 * rule_hits / n:.1f}%")
    print(f"  one one-sided test alone at 0.05, night 6 against night 5: Fisher "
          f"{100 * fisher_hits / n:.1f}%, Boschloo {100 * alone_hits / n:.1f}%")
    print(f"  history over {a.nights} nights (change-point, Holm across 48 cells): a first bad "
          f"night {100 * hist_any / n:.1f}%, night 6 exactly {100 * hist_exact / n:.1f}%")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
