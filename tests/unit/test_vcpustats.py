"""Per-vCPU host timing: the parsers, the summary's arithmetic, and the sampler hook on a
scripted domain (the real thing runs in tests/integration/test_local_cycle.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from harness.backend.base import BootRequest
from harness.collect import vcpustats as vs
from harness.inventory import GuestSpec, HostSpec
from harness.model import Cell

STAT = ("4242 (CPU 1/TCG) S 4200 4200 0 0 -1 4194368 12 0 0 0 "
        "150 25 0 0 20 0 6 0 123 1000 100 18446744073709551615")


def test_parse_task_stat_takes_the_fields_after_the_last_parenthesis() -> None:
    st = vs.parse_task_stat(STAT)
    assert st == vs.TaskStat("S", 175)
    assert vs.parse_task_stat("1 (a) b) R 1 2 3 4 5 6 7 8 9 10 11 12") == vs.TaskStat("R", 23)
    assert vs.parse_task_stat("garbage") is None
    assert vs.parse_task_stat("1 (x) R 1 2") is None
    assert vs.parse_task_stat("1 (x) R 1 2 3 4 5 6 7 8 9 10 x y") is None


def test_small_parsers() -> None:
    assert vs.parse_schedstat("435405093 1241299913 880\n") == (435405093, 1241299913)
    assert vs.parse_schedstat("") is None and vs.parse_schedstat("a b c") is None
    assert vs.parse_allowed_list("Name:\tqemu\nCpus_allowed_list:\t0-1\n") == "0-1"
    assert vs.parse_allowed_list("Name: x\n") is None
    assert vs.frozen_v2("populated 1\nfrozen 1\n") and not vs.frozen_v2("frozen 0\n")
    assert vs.frozen_v1("FROZEN\n") and vs.frozen_v1("FREEZING") and not vs.frozen_v1("THAWED")
    assert vs.libvirt_vcpus({"vcpu.current": 2, "vcpu.0.time": 5, "vcpu.1.delay": 7,
                             "vcpu.x.time": 1}) == {0: {"time": 5}, 1: {"delay": 7}}


def _s(t: float, **cpus: dict[str, Any]) -> dict[str, Any]:
    return {"t": t, "v": {int(k[1:]): v for k, v in cpus.items()}}


def test_summary_adds_run_queue_delay_and_frozen_time() -> None:
    samples = [
        _s(0.0, c0={"time": 0, "delay": 0, "state": "S"},
           c1={"time": 0, "delay": 0, "state": "S", "frozen": True, "affinity": "1"},
           c2={"time": 0, "delay": 0, "state": "S"}),
        _s(1.0, c0={"time": 9e8, "delay": 2e8, "state": "R"},
           c1={"time": 0, "delay": 0, "state": "S", "frozen": True},
           c2={"time": 5e8, "delay": 4e8, "state": "R"}),
        _s(2.5, c0={"time": 1.8e9, "delay": 3e8, "state": "R"},
           c1={"time": 0, "delay": 0, "state": "S", "frozen": False},
           c2={"time": 9e8, "delay": 9e8, "state": "T"}),
        _s(3.0, c0={"time": 2e9, "delay": 3e8, "state": "S"},
           c1={"time": 1e8, "delay": 1e7, "state": "R", "frozen": False},
           c2={"time": 9e8, "delay": 9e8, "state": "S"}),
    ]
    s = vs.summarize(samples)
    assert s["samples"] == 4 and s["window_s"] == 3.0
    v = s["vcpus"]
    assert v["0"]["time_s"] == 2.0 and v["0"]["delay_s"] == 0.3 and v["0"]["frozen_s"] == 0
    # frozen over [0, 1] and [1, 2.5]: 2.5 s, plus 10 ms in the run queue
    assert v["1"]["frozen_s"] == 2.5 and v["1"]["host_delay_s"] == 2.51
    assert v["1"]["affinity"] == "1" and v["1"]["states"] == {"R": 1, "S": 3}
    # stopped (T) over [2.5, 3]: 0.5 s held, plus 0.9 s queued
    assert v["2"]["frozen_s"] == 0.5 and v["2"]["host_delay_s"] == 1.4
    assert v["2"]["wait_s"] is None
    assert s["late_cpu"] == 1 and s["max_host_delay_s"] == 2.51


def test_summary_uses_procs_run_queue_delay_without_libvirts() -> None:
    s = vs.summarize([_s(0, c1={"rq_delay": 10**9, "state": "R"}),
                      _s(1, c1={"rq_delay": 3 * 10**9, "state": "R"})])
    assert s["vcpus"]["1"]["delay_s"] == 2.0 and s["late_cpu"] == 1
    assert vs.summarize([]) == {"samples": 0, "vcpus": {}}
    only_boot_cpu = vs.summarize([_s(0, c0={"time": 0}), _s(1, c0={"time": 1})])
    assert only_boot_cpu["late_cpu"] is None and only_boot_cpu["max_host_delay_s"] is None


def test_late_vcpu_delay_prefers_offline_then_slowest_then_the_hosts_choice() -> None:
    summary = {"late_cpu": 3, "vcpus": {"1": {"host_delay_s": 0.1},
                                        "2": {"host_delay_s": 0.5},
                                        "3": {"host_delay_s": 9.0}}}
    extra = {"hook": {"host_vcpus": summary}}
    assert vs.late_vcpu_delay(extra, offline=(2,)) == (2, 0.5)
    assert vs.late_vcpu_delay(extra, slowest=1) == (1, 0.1)
    assert vs.late_vcpu_delay(extra) == (3, 9.0)
    assert vs.late_vcpu_delay(extra, offline=(7,), slowest=None) == (3, 9.0)
    assert vs.late_vcpu_delay({}) is None
    assert vs.late_vcpu_delay({"hook": {"host_vcpus": {"vcpus": {}}}}) is None


class _Dom:
    """A domain whose libvirt statistics follow a script (one dict per call)."""

    name = "hb-fake"
    host_is_local = False  # as its remote URI (below) declares

    def __init__(self, script: list[dict[str, int]]) -> None:
        self.script = script
        self.calls = 0
        self.lock = threading.Lock()

    def vcpu_stats(self) -> dict[str, int]:
        with self.lock:
            i = min(self.calls, len(self.script) - 1)
            self.calls += 1
        if self.script[i].get("boom"):
            raise RuntimeError("libvirt went away")
        return self.script[i]


def _req(tmp: Path) -> BootRequest:
    cell = Cell(id="h/g/vcpu2", matrix="m", host="h", guest="g", vcpus=2, boots=1)
    return BootRequest(run_id="r", cell=cell, host_name="h", host=HostSpec(uri="qemu+ssh://h/system"),
                       guest_name="g", guest=GuestSpec(), domain_name="hb-fake",
                       boot_index=0, workdir=tmp / "boot")


def test_sampler_hook_samples_until_stop_and_reports(tmp_path: Path) -> None:
    ticks = iter(float(i) for i in range(10_000))
    dom = _Dom([{"vcpu.0.time": 0, "vcpu.1.time": 0, "vcpu.1.delay": 0},
                {"boom": 1},
                {"vcpu.0.time": 10**9, "vcpu.1.time": 0, "vcpu.1.delay": 4 * 10**9}])
    hook = vs.VcpuSampler(interval_s=0.001, clock=lambda: next(ticks))
    req = _req(tmp_path)
    assert hook.before_resume(dom, req) is None  # type: ignore[arg-type]
    while dom.calls < 5:
        threading.Event().wait(0.001)
    hook.before_stop(dom, req)  # type: ignore[arg-type]
    hook.after_stop(dom, req)  # type: ignore[arg-type]
    rep = hook.report()["host_vcpus"]
    assert rep["source"] == ["libvirt"] and rep["errors"] == 1
    assert rep["first_error"] == "RuntimeError: libvirt went away"
    assert rep["vcpus"]["1"]["delay_s"] == 4.0 and rep["late_cpu"] == 1
    assert rep["file"] == vs.SAMPLES_FILE
    saved = json.loads((req.workdir / vs.SAMPLES_FILE).read_text())
    assert saved["summary"]["samples"] == len(saved["samples"]) == rep["samples"] >= 4
    hook.after_stop(dom, req)  # type: ignore[arg-type]  # idempotent
    assert hook.report()["host_vcpus"] is rep or hook.report()["host_vcpus"] == rep


def test_sampler_ignores_domains_without_statistics(tmp_path: Path) -> None:
    class Sim:
        name = "sim"

    hook = vs.VcpuSampler()
    assert hook.before_resume(Sim(), _req(tmp_path)) is None  # type: ignore[arg-type]
    hook.before_stop(Sim(), _req(tmp_path))  # type: ignore[arg-type]
    hook.after_stop(Sim(), _req(tmp_path))  # type: ignore[arg-type]
    assert hook.report() == {}


def test_bringup_window_from_the_console_phase() -> None:
    assert vs.bringup_phase("Booting Linux\n") == 0
    assert vs.bringup_phase("[0.1] smp: Bringing up secondary CPUs ...\n") == 1
    assert vs.bringup_phase("smp: Bringing up secondary CPUs ...\nsmp: Brought up 1 node, "
                            "2 CPUs\n") == 2
    run = [{"t": float(i), "c": c, "v": {0: {"delay": int(i * 1e9), "state": "R"},
                                         1: {"delay": 0, "state": "S", "frozen": 2 <= i < 6}}}
           for i, c in enumerate([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])]
    assert vs.bringup_window(run) == (2, 6)
    s = vs.summarize(run)
    # whole boot: vCPU 0 queued 9 s, more than vCPU 1 was frozen (4 s)
    assert s["vcpus"]["0"]["host_delay_s"] == 9.0 and s["vcpus"]["1"]["host_delay_s"] == 4.0
    b = s["bringup"]
    assert b["window_s"] == 4.0 and b["samples"] == 5
    assert b["vcpus"]["1"]["host_delay_s"] == 4.0 and b["vcpus"]["0"]["host_delay_s"] == 4.0
    assert vs.late_vcpu_delay({"hook": {"host_vcpus": s}}) == (1, 4.0)
    assert vs.bringup_window([{"t": 0, "c": 1, "v": {}}]) is None
