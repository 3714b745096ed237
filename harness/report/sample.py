"""A synthetic report view for tests, benchmarks and trying the HTML out (no store needed).

FT-2500-like rates: es10 is clean; es11/es14/es15 lose a vCPU often on hosts without the
NUMA patch and sometimes with it, more with more vCPUs. Intervals come from scipy's
binomial test (Wilson for display, Clopper-Pearson for the verdict); the comparisons are
placeholders with fixed p-values, clearly labelled, for rendering only.
"""

from __future__ import annotations

import random

from scipy.stats import binomtest

from harness.report.view import (
    BootView,
    CellView,
    Comparison,
    Histogram,
    Judgement,
    Rate,
    RunView,
    SignatureCount,
    Snippet,
    pct,
    rate_text,
)

GUESTS = ("es10", "es11", "es14", "es15")


def wilson(k: int, n: int, confidence: float = 0.95) -> Rate:
    if n == 0:
        return Rate(k, n, None, 0.0, 1.0)
    ci = binomtest(k, n).proportion_ci(confidence, "wilson")
    return Rate(k, n, k / n, float(ci.low), float(ci.high))


def _judge(outcome: str, label: str, k: int, n: int, limit: float) -> Judgement:
    shown = wilson(k, n)
    if n == 0:
        return Judgement(outcome, "undecided", limit, f"{label} 0/0, expected <= {pct(limit)}")
    ci = binomtest(k, n).proportion_ci(0.95, "exact")
    verdict = "fail" if ci.low > limit else "pass" if ci.high < limit else "undecided"
    return Judgement(outcome, verdict, limit,
                     f"{label} {rate_text(shown)}, expected <= {pct(limit)}",
                     boots_to_decide=n if verdict == "undecided" else None)


def _dmesg_snippet(cpu: int, line: int) -> Snippet:
    lines = (
        "smp: Bringing up secondary CPUs ...",
        f"CPU{cpu - 1}: Booted secondary processor 0x0000000{cpu - 1}00 [0x701f6622]",
        f"CPU{cpu}: failed to come online",
        f"CPU{cpu}: failed in unknown state : 0x0",
        f"CPU{cpu + 1}: Booted secondary processor 0x0000000{cpu + 1}00 [0x701f6622]",
        "smp: Brought up 1 node, 7 CPUs",
    )
    return Snippet(f"cpu_failed_online at dmesg:{line + 2}", "dmesg", line, lines,
                   (line + 2, line + 3))


def _console_snippet() -> Snippet:
    lines = ("[    8.1] Unable to handle kernel NULL pointer dereference at virtual address 0",
             "[    8.1] Internal error: Oops: 96000004 [#1] SMP",
             "[    8.2] Call trace:", "[    8.2]  smp_cpus_done+0x20/0x90",
             "[    8.3] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b")
    return Snippet("console (last 5 lines)", "console", 402, lines, (406,))


def sample_view(hosts: int = 3, guests: tuple[str, ...] = GUESTS,
                vcpus: tuple[int, ...] = (4, 8, 16), extra: tuple[int, ...] = (),
                boots: int = 20, seed: int = 7, run_id: str = "sample-1") -> RunView:
    """``hosts`` x ``guests`` x ``vcpus`` (x ``extra`` memory sizes) cells of ``boots``."""
    rng = random.Random(seed)
    cells: list[CellView] = []
    latencies: list[float] = []
    for h in range(1, hosts + 1):
        numa = h % 2 == 0
        for g in guests:
            for v in vcpus:
                for mem in extra or (None,):
                    base = 0.0 if g == "es10" else (0.04 if numa else 0.35)
                    p_off = min(0.95, base * (v / 8))
                    counts = {"ok": 0, "vcpu_offline": 0, "boot_failure": 0, "infra_error": 0}
                    bviews = []
                    for i in range(boots):
                        u = rng.random()
                        lat = round(rng.lognormvariate(-1.2, 0.6), 4)
                        if u < 0.005:
                            b = BootView(i, "infra_error", "libvirt: host unreachable")
                        elif u < 0.005 + 0.01 * (g != "es10"):
                            b = BootView(i, "boot_failure", "Kernel panic - not syncing",
                                         snippets=(_console_snippet(),),
                                         artifacts=(("console", f"{run_id}/c/{i}/console.log"),))
                        elif u < 0.015 + p_off:
                            cpu = rng.randrange(1, v)
                            lat = round(5.0 + rng.random(), 4)
                            b = BootView(i, "vcpu_offline", f"CPU{cpu} failed to come online",
                                         (cpu,), lat, ("CPU#: failed to come online",),
                                         (_dmesg_snippet(cpu, 800 + cpu),),
                                         (("dmesg", f"{run_id}/c/{i}/dmesg.txt"),))
                        else:
                            b = BootView(i, "ok", latency_s=lat)
                        if b.latency_s is not None:
                            latencies.append(b.latency_s)
                        counts[b.outcome] += 1
                        bviews.append(b)
                    n = counts["ok"] + counts["vcpu_offline"] + counts["boot_failure"]
                    judg = (_judge("vcpu_offline", "vCPU offline", counts["vcpu_offline"], n, 0.1),
                            _judge("boot_failure", "boot failure", counts["boot_failure"], n, 0.1))
                    verdicts = {j.verdict for j in judg}
                    verdict = ("fail" if "fail" in verdicts else
                               "undecided" if "undecided" in verdicts else "pass")
                    sigs = []
                    if counts["vcpu_offline"]:
                        sigs.append(SignatureCount("CPU#: failed to come online",
                                                   counts["vcpu_offline"], "cpu_failed_online"))
                    if counts["boot_failure"]:
                        sigs.append(SignatureCount("Kernel panic - not syncing: Attempted to "
                                                   "kill init!", counts["boot_failure"], "panic"))
                    cid = f"node-{h}/{g}/vcpu{v}" + (f"/memory_mib={mem}" if mem else "")
                    cells.append(CellView(
                        id=cid, host=f"node-{h}", guest=g, vcpus=v, planned=boots,
                        ok=counts["ok"], vcpu_offline=counts["vcpu_offline"],
                        boot_failure=counts["boot_failure"], infra_error=counts["infra_error"],
                        vcpu_offline_rate=wilson(counts["vcpu_offline"], n),
                        boot_failure_rate=wilson(counts["boot_failure"], n),
                        verdict=verdict, judgements=judg, signatures=tuple(sigs),
                        params=(("memory_mib", mem),) if mem else (),
                        host_attrs=(("numa_patch", numa), ("cpu", "FT-2500")),
                        boot_views=tuple(bviews)))
    comparisons = _placeholder_comparisons(cells)
    return RunView(
        id=run_id, matrix="ft2500-nightly", started="2026-11-25T01:00:00Z",
        finished="2026-11-25T04:10:00Z", cells=tuple(cells),
        axes=("host", "guest", "vcpus", *(("memory_mib",) if extra else ())),
        host_attr_names=("numa_patch", "cpu"), comparisons=comparisons,
        latency=_histogram(latencies),
        config=(("matrix file", "matrices/ft2500.yaml"), ("lab", "lab/ft2500.yaml"),
                ("boots per cell", boots), ("expect", {"vcpu_offline": 0.1,
                                                       "boot_failure": 0.1})),
        versions=(("harness", "0.1.0"), ("libvirt", "9.0.0"), ("qemu", "7.2.0")),
        previous_note="Synthetic run: no previous run.",
    )


def _placeholder_comparisons(cells: list[CellView]) -> tuple[Comparison, ...]:
    out = []
    for g in sorted({c.guest for c in cells}):
        groups = {}
        for numa in (True, False):
            sel = [c for c in cells if c.guest == g and dict(c.host_attrs)["numa_patch"] is numa]
            k = sum(c.vcpu_offline for c in sel)
            n = sum(c.guest_boots for c in sel)
            groups[numa] = wilson(k, n)
        a, b = groups[True], groups[False]
        if a.value is None or b.value is None:
            continue
        d = a.value - b.value
        out.append(Comparison("vcpu_offline", "numa_patch", "numa_patch=true",
                              "numa_patch=false", f"guest={g}", a, b,
                              Rate(0, 0, d, d - 0.05, d + 0.05), 0.001 if d < -0.1 else 0.6,
                              0.004 if d < -0.1 else 1.0, d < -0.1,
                              test="placeholder (synthetic)"))
    return tuple(out)


def _histogram(values: list[float], bins: int = 30) -> Histogram | None:
    if not values:
        return None
    import numpy as np

    arr = np.asarray(values)
    counts, edges = np.histogram(arr, bins=bins)
    return Histogram(tuple(float(e) for e in edges), tuple(int(c) for c in counts), len(values),
                     float(np.median(arr)), float(np.percentile(arr, 95)), float(arr.max()))
