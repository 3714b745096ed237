"""A synthetic report view for tests, benchmarks and trying the HTML out (no store needed).

FT-2500-like rates: es10 is clean; es11/es14/es15 lose a vCPU often on hosts without the
NUMA patch and sometimes with it, more with more vCPUs. Intervals come from scipy's
binomial test (Wilson for display, Clopper-Pearson for the verdict); the comparisons are
placeholders with fixed p-values, clearly labelled, for rendering only.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from harness.model import BootResult, Cell, Expectation, Finding, Outcome, Signature
from harness.report.build import latency_histogram
from harness.report.view import (
    BootView,
    CellView,
    ClassVerdict,
    Comparison,
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
        return Rate(k=k, n=n, value=None, low=0.0, high=1.0)
    ci = binomtest(k, n).proportion_ci(confidence, "wilson")
    return Rate(k=k, n=n, value=k / n, low=float(ci.low), high=float(ci.high))


def _judge(outcome: str, label: str, k: int, n: int, limit: float) -> ClassVerdict:
    shown = wilson(k, n)
    if n == 0:
        return ClassVerdict(outcome=outcome, verdict="undecided", limit=limit,
                            statement=f"{label} 0/0, expected <= {pct(limit)}")
    ci = binomtest(k, n).proportion_ci(0.95, "exact")
    verdict = "fail" if ci.low > limit else "pass" if ci.high < limit else "undecided"
    return ClassVerdict(outcome=outcome, verdict=verdict, limit=limit,
                        statement=f"{label} {rate_text(shown)}, expected <= {pct(limit)}",
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
                        sigs.append(SignatureCount(title="CPU#: failed to come online",
                                                   count=counts["vcpu_offline"],
                                                   kind="cpu_failed_online"))
                    if counts["boot_failure"]:
                        sigs.append(SignatureCount(title="Kernel panic - not syncing: "
                                                   "Attempted to kill init!",
                                                   count=counts["boot_failure"], kind="panic"))
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
        latency=latency_histogram(latencies),
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
                              Rate(k=0, n=0, value=d, low=d - 0.05, high=d + 0.05),
                              0.001 if d < -0.1 else 0.6,
                              0.004 if d < -0.1 else 1.0, d < -0.1,
                              test="placeholder (synthetic)"))
    return tuple(out)



# --- a synthetic run recorded in a real store (tests, benchmarks) -----------------------

_DMESG_HEAD = (
    "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x701f6622]",
    "[    0.000000] Linux version 4.19.90-es11 (builder@build) #1 SMP",
    "[    0.000000] psci: PSCIv1.1 detected in firmware.",
    "[    0.020000] smp: Bringing up secondary CPUs ...",
)


def _dmesg(vcpus: int, offline: int | None) -> tuple[list[str], list[tuple[str, int, int]]]:
    """A guest dmesg; ``offline`` is the CPU that fails. Returns the lines and the
    findings (kind, 1-based line, cpu)."""
    lines = list(_DMESG_HEAD)
    finds = []
    t = 0.03
    for cpu in range(1, vcpus):
        if cpu == offline:
            t += 5.0
            lines.append(f"[{t:12.6f}] CPU{cpu}: failed to come online")
            finds.append(("cpu_failed_online", len(lines), cpu))
            lines.append(f"[{t:12.6f}] CPU{cpu}: failed in unknown state : 0x0")
            continue
        t += 0.01
        lines.append(f"[{t:12.6f}] CPU{cpu}: Booted secondary processor 0x00000{cpu:05x} "
                     "[0x701f6622]")
    up = vcpus - (1 if offline else 0)
    lines.append(f"[{t:12.6f}] smp: Brought up 1 node, {up} CPUs")
    lines += [f"[{t + 0.1 * i:12.6f}] random: crng init step {i}" for i in range(8)]
    return lines, finds


def record_sample_run(store: Any, run_id: str, run_dir: Path, *, hosts: int = 3,
                      guests: tuple[str, ...] = GUESTS, vcpus: tuple[int, ...] = (4, 8),
                      boots: int = 20, seed: int = 7, scale: float = 1.0,
                      started: float = 1_795_000_000.0, matrix: str = "ft2500-sample",
                      extra: tuple[int, ...] = (), ok_artifacts: bool = True) -> list[Cell]:
    """Record a synthetic FT-2500-like run in ``store`` (a ``harness.store.Store``) with
    dmesg/console artifacts under ``run_dir``; ``scale`` multiplies the failure rates
    (a later run with another scale is "worse" or "better"); ``ok_artifacts=False``
    writes no files for boots that were ok (reports never read them)."""
    rng = random.Random(seed)
    cells = []
    for h in range(1, hosts + 1):
        numa = h % 2 == 0
        for g in guests:
            for v in vcpus:
                for mem in extra or (None,):
                    cid = f"node-{h}/{g}/vcpu{v}" + (f"/memory_mib={mem}" if mem else "")
                    cells.append(Cell(cid, matrix, f"node-{h}", g, v, boots,
                                      memory_mib=mem or 2048,
                                      host_attrs=(("numa_patch", numa), ("cpu", "FT-2500")),
                                      expect=Expectation(vcpu_offline=0.0, boot_failure=0.05)))
    store.create_run(run_id, matrix, cells, matrix_file="matrices/ft2500.yaml",
                     config={"lab": "ft2500-lab", "boots": boots,
                             "versions": {"harness": "0.1.0", "libvirt": "9.0.0",
                                          "qemu": "7.2.0"}},
                     artifacts_dir=str(run_dir), started=started)
    results = []
    for cell in cells:
        base = 0.0 if cell.guest == "es10" else (0.04 if dict(cell.host_attrs)["numa_patch"]
                                                 else 0.35)
        p_off = min(0.95, base * scale * cell.vcpus / 8)
        for i in range(boots):
            u = rng.random()
            rel = Path(cell.folder) / str(i)
            folder = run_dir / rel
            if u < 0.005:  # an infrastructure error, retried as the boot loop does
                results.append(BootResult(run_id, cell.id, i, Outcome.INFRA_ERROR,
                                          "libvirt: cannot reach host", cell.host, cell.guest,
                                          cell.vcpus))
                u = 0.005 + random.Random(f"{seed}|{cell.id}|{i}").random() * 0.995
            failure = u < 0.005 + 0.01 * scale * (cell.guest != "es10")
            offline = rng.randrange(1, cell.vcpus) if (not failure
                                                       and u < 0.015 + p_off) else None
            lines, finds = _dmesg(cell.vcpus, offline)
            arts = []
            if ok_artifacts or failure or offline:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "dmesg.txt").write_text("\n".join(lines) + "\n")
                arts.append(("dmesg", str(rel / "dmesg.txt")))
            findings = tuple(Finding(k, ln, lines[ln - 1].split("] ", 1)[1], cpu)
                             for k, ln, cpu in finds)
            if failure:
                console = [*lines[:6], "Unable to handle kernel NULL pointer dereference at "
                           "virtual address 0000000000000000", "Internal error: Oops: "
                           "96000004 [#1] SMP", "Call trace:", " smp_cpus_done+0x20/0x90",
                           "Kernel panic - not syncing: Attempted to kill init! "
                           "exitcode=0x0000000b"]
                (folder / "console.log").write_text("\n".join(console) + "\n")
                arts.append(("console", str(rel / "console.log")))
                results.append(BootResult(
                    run_id, cell.id, i, Outcome.BOOT_FAILURE, "Kernel panic - not syncing",
                    cell.host, cell.guest, cell.vcpus, signatures=(Signature(
                        "panic", "Kernel panic - not syncing: Attempted to kill init!"),),
                    findings=(Finding("panic", len(console), console[-1]),),
                    artifacts=tuple(arts)))
                continue
            lat = 5.0 + rng.random() if offline else rng.lognormvariate(-3.5, 0.4)
            results.append(BootResult(
                run_id, cell.id, i, Outcome.VCPU_OFFLINE if offline else Outcome.OK,
                f"CPU{offline} failed to come online" if offline else "", cell.host,
                cell.guest, cell.vcpus, offline_cpus=(offline,) if offline else (),
                signatures=(Signature("cpu_failed_online", "CPU#: failed to come online"),)
                if offline else (), findings=findings, bringup_latency_s=round(lat, 4),
                artifacts=tuple(arts)))
    store.record_many(results)
    store.mark_finished(run_id, finished=started + 3600)
    return cells
