"""The boot loop against the scripted fakes: lifecycle, outcomes, retries, hooks, stop."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.backend.base import BootRequest, Domain
from harness.bootloop import BootLoop, HostHealth, domain_name
from harness.classify.result import Classification
from harness.errors import BackendError
from harness.inventory import Lab, load_lab
from harness.model import Cell, Outcome, RebootMode, Timeouts
from harness.testing.fakes import FakeBackend, FakeClock, FakeConnector, Script
from harness.testing.sink import JsonlSink

DATA = Path(__file__).parent.parent / "data" / "bootloop"


@pytest.fixture(scope="module")
def lab() -> Lab:
    return load_lab(DATA / "lab.yaml")


def cell(vcpus: int = 4, boots: int = 3, reboot: RebootMode = RebootMode.COLD,
         host: str = "local") -> Cell:
    return Cell(id=f"{host}/tiny/vcpu{vcpus}", matrix="t", host=host, guest="tiny",
                vcpus=vcpus, boots=boots, reboot=reboot,
                timeouts=Timeouts(boot=120, ssh=5, command=10))


def stub_classify(text: str, *, expected_cpus: int | None = None,
                  online: str | None = None) -> Classification:
    return Classification(extra={"stub": True})


class Rig:
    def __init__(self, lab: Lab, tmp: Path, scripts: Any, **kw: Any) -> None:
        self.backend = FakeBackend(scripts)
        self.connector = FakeConnector()
        self.clock = FakeClock()
        self.sink = JsonlSink(tmp / "results.jsonl")
        self.workdir = tmp / "run"
        kw.setdefault("classify", stub_classify)
        self.loop = BootLoop(lambda host: self.backend, lambda h, g: self.connector, self.sink,
                             lab, self.workdir, "r1", clock=self.clock.time,
                             sleep=self.clock.sleep, **kw)

    def run(self, c: Cell, indices: list[int] | None = None) -> list[Any]:
        return list(self.loop.run_chunk(c, indices if indices is not None else
                                        list(range(c.boots))))

    def lines(self) -> list[dict[str, Any]]:
        path = self.sink.path
        if not path.exists():
            return []
        return [json.loads(x) for x in path.read_text().splitlines()]

    def calls(self, what: str) -> list[str]:
        return [name for w, name in self.backend.log if w == what]


def test_cold_boots_record_artifacts_and_clean_up(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script()])
    c = cell()
    results = rig.run(c)
    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert [r.index for r in results] == [0, 1, 2]
    names = [domain_name("r1", c, i) for i in range(3)]
    assert names[0] == f"hb-r1-{c.folder}-0" and c.folder.startswith("local.tiny.vcpu4-")
    assert rig.calls("define") == names
    assert rig.calls("undefine") == names
    assert rig.backend.defined == {}
    assert [d["index"] for d in rig.lines()] == [0, 1, 2]
    r = results[1]
    assert r.online_cpus == (0, 1, 2, 3) and r.offline_cpus == ()
    assert r.kernel_release == "6.1.0-fake"
    events = dict(r.timings)
    assert {"define", "start", "first_console", "ssh_up", "collected", "stopped"} <= set(events)
    assert events["define"] <= events["start"] <= events["ssh_up"] <= events["collected"]
    folder = rig.workdir / c.folder / "1"
    for name in ("dmesg.txt", "console.log", "qemu.log", "meta.json"):
        assert (folder / name).is_file(), name
    assert "Booted secondary processor" in (folder / "dmesg.txt").read_text()
    assert "Booting Linux" in (folder / "console.log").read_text()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["outcome"] == "ok" and meta["index"] == 1
    assert dict(r.artifacts)["dmesg"] == f"{c.folder}/1/dmesg.txt"
    assert dict(r.extra)["domain"] == names[1]
    # one GuestNotReady per boot before the login: one poll sleep each
    assert rig.clock.sleeps == [1.0, 1.0, 1.0]


def test_offline_vcpu_is_named(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script(online="0-2,4-7")])
    (r,) = rig.run(cell(vcpus=8, boots=1))
    assert r.outcome is Outcome.VCPU_OFFLINE
    assert r.offline_cpus == (3,)
    assert r.reason == "CPU 3 offline (7/8 online)"


def test_console_panic_fails_the_boot_at_once(lab: Lab, tmp_path: Path) -> None:
    console = ("Booting Linux on physical CPU 0x0\n"
               "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n")
    rig = Rig(lab, tmp_path, [Script(console=console, never_ready=True)])
    (r,) = rig.run(cell(boots=1))
    assert r.outcome is Outcome.BOOT_FAILURE
    assert r.reason == "kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"
    assert sum(rig.clock.sleeps) == 0  # did not wait for SSH at all
    assert rig.backend.defined == {}


def test_no_ssh_within_the_boot_timeout(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script(never_ready=True)], poll_s=7.0)
    (r,) = rig.run(cell(boots=1))
    assert r.outcome is Outcome.BOOT_FAILURE
    assert r.reason == "no SSH within 120s"
    assert 119 <= sum(rig.clock.sleeps) <= 121
    assert r.attempt == 1  # a guest failure is not retried


def test_domain_that_stops_is_a_boot_failure(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script(stops=True)])
    (r,) = rig.run(cell(boots=1))
    assert r.outcome is Outcome.BOOT_FAILURE
    assert "stopped before SSH" in r.reason


def test_infra_errors_are_retried_with_backoff(lab: Lab, tmp_path: Path) -> None:
    scripts = [Script(define_error="define_refused"), Script(start_error="start_refused"),
               Script()]
    rig = Rig(lab, tmp_path, scripts)
    (r,) = rig.run(cell(boots=1))
    assert r.outcome is Outcome.OK and r.attempt == 3
    earlier = dict(r.extra)["earlier_attempts"]
    assert earlier[0].startswith("define_refused:") and earlier[1].startswith("start_refused:")
    assert rig.clock.sleeps[:2] == [2.0, 4.0]
    # the domain whose start failed was undefined too
    assert rig.backend.defined == {}
    assert len(rig.lines()) == 1


def test_ssh_auth_refused_is_infra_and_sets_the_host_aside(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script(auth_refused=True)], health=HostHealth(limit=4))
    results = rig.run(cell(boots=5))
    # boot 0: 3 attempts; boot 1: the 4th error sets the host aside -> no more boots
    assert [r.outcome for r in results] == [Outcome.INFRA_ERROR, Outcome.INFRA_ERROR]
    assert results[0].attempt == 3 and results[1].attempt == 1
    assert results[0].reason.startswith("ssh_auth:")
    assert rig.loop.host_failed("local")
    assert "4 infrastructure errors in a row" in (rig.loop.health.why("local") or "")
    assert not rig.loop.host_failed("node-1")
    assert rig.backend.defined == {}
    assert list(rig.loop.run_chunk(cell(boots=5), [2, 3])) == []


def test_a_good_boot_resets_the_error_streak(lab: Lab, tmp_path: Path) -> None:
    scripts = [Script(define_error="libvirt_unreachable"), Script()] * 3
    rig = Rig(lab, tmp_path, scripts, health=HostHealth(limit=2))
    results = rig.run(cell(boots=3))
    assert [r.outcome for r in results] == [Outcome.OK] * 3
    assert not rig.loop.host_failed("local")


def test_non_retryable_infra_error_is_not_retried(lab: Lab, tmp_path: Path) -> None:
    def backend_for(host: str) -> Any:
        raise BackendError("cannot connect to libvirt at qemu+ssh://x", reason="x",
                           retryable=False)

    loop = BootLoop(backend_for, lambda h, g: FakeConnector(), JsonlSink(tmp_path / "r.jsonl"),
                    lab, tmp_path, "r1", classify=stub_classify, sleep=lambda s: None)
    (r,) = list(loop.run_chunk(cell(boots=1), [0]))
    assert r.outcome is Outcome.INFRA_ERROR and r.attempt == 1
    assert "cannot connect" in r.reason


def test_hanging_command_is_a_boot_failure_with_reason(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script(hang="dmesg")])
    (r,) = rig.run(cell(boots=1))
    assert r.outcome is Outcome.BOOT_FAILURE
    assert r.reason == "the guest stopped answering: command 'dmesg' did not finish within 10s"


def test_lost_session_without_panic_is_infra(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script(session_lost="nproc"), Script()])
    (r,) = rig.run(cell(boots=1))
    assert r.outcome is Outcome.OK and r.attempt == 2
    assert dict(r.extra)["earlier_attempts"][0].startswith("ssh_lost:")


@pytest.mark.parametrize("mode", [RebootMode.WARM, RebootMode.RESET])
def test_warm_and_reset_reuse_one_domain(lab: Lab, tmp_path: Path, mode: RebootMode) -> None:
    rig = Rig(lab, tmp_path, [Script(), Script(online="0,2-3"), Script()])
    c = cell(boots=3, reboot=mode)
    results = rig.run(c, [4, 5, 6])
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.VCPU_OFFLINE, Outcome.OK]
    name = domain_name("r1", c, 4)
    assert rig.calls("define") == [name]
    assert rig.calls("undefine") == [name]
    assert rig.calls("reset" if mode is RebootMode.RESET else "reboot") == [name, name]
    # each boot's console.log holds only that boot's console
    for i in (4, 5, 6):
        text = (rig.workdir / c.folder / str(i) / "console.log").read_text()
        assert text.count("Booting Linux") == 1
    assert rig.backend.defined == {}


def test_warm_reboot_does_not_collect_from_the_old_boot(lab: Lab, tmp_path: Path) -> None:
    """After `reboot` the old sshd may still answer: its boot id gives it away."""
    rig = Rig(lab, tmp_path, [Script(not_ready=0), Script(not_ready=0, online="0-2")])
    rig.backend.reboot_lag = 2
    results = rig.run(cell(vcpus=4, boots=2, reboot=RebootMode.WARM))
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.VCPU_OFFLINE]
    assert results[1].offline_cpus == (3,)
    # two logins reached the old boot and were let go
    assert len(rig.connector.channels) == 1 + 3


def test_warm_reboot_waits_timeouts_shutdown_then_resets(lab: Lab, tmp_path: Path) -> None:
    """timeouts.shutdown is honoured: a guest still on its old boot that long after
    `reboot` is reset (hardware), and the boot says so."""
    rig = Rig(lab, tmp_path, [Script(not_ready=0, ignores_reboot=True), Script(not_ready=0)],
              poll_s=1.0)
    c = replace(cell(vcpus=4, boots=2, reboot=RebootMode.WARM),
                timeouts=Timeouts(boot=120, ssh=5, command=10, shutdown=7))
    results = rig.run(c)
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]
    assert rig.calls("reset") == [results[0].extra and dict(results[0].extra)["domain"]]
    second = dict(results[1].timings)
    assert 7 <= second["shutdown_timeout"] - second["start"] <= 9
    assert dict(results[1].extra)["timeout"] == "shutdown"
    assert "shutdown_timeout" not in dict(results[0].timings)


def test_warm_chunk_starts_fresh_after_a_failed_boot(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script(), Script(never_ready=True), Script()], poll_s=60)
    c = cell(boots=3, reboot=RebootMode.WARM)
    results = rig.run(c)
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.BOOT_FAILURE, Outcome.OK]
    assert rig.calls("define") == [domain_name("r1", c, 0), domain_name("r1", c, 2)]
    assert rig.backend.defined == {}


class Hook:
    def __init__(self, loop_holder: list[BootLoop] | None = None) -> None:
        self.events: list[tuple[str, str, bool]] = []
        self.loop_holder = loop_holder

    def before_resume(self, domain: Domain, request: BootRequest) -> dict[str, Any] | None:
        assert getattr(domain, "paused", False)
        self.events.append(("before_resume", request.domain_name, domain.is_active()))
        if self.loop_holder:
            self.loop_holder[0].request_stop()
        return {"stalled_cpu": 3, "seconds": 8.0}

    def before_stop(self, domain: Domain, request: BootRequest) -> None:
        self.events.append(("before_stop", request.domain_name, domain.is_active()))

    def after_stop(self, domain: Domain, request: BootRequest) -> None:
        self.events.append(("after_stop", request.domain_name, domain.is_active()))


def test_hooks_run_between_paused_start_and_resume(lab: Lab, tmp_path: Path) -> None:
    hook = Hook()
    rig = Rig(lab, tmp_path, [Script()], hooks_for=lambda req: [hook])
    c = cell(boots=1)
    (r,) = rig.run(c)
    name = domain_name("r1", c, 0)
    assert [w for w, n in rig.backend.log] == ["define", "start_paused", "resume", "destroy",
                                              "undefine"]
    assert hook.events == [("before_resume", name, True), ("before_stop", name, True),
                           ("after_stop", name, False)]
    assert dict(r.extra)["hook"] == {"stalled_cpu": 3, "seconds": 8.0}
    assert "resume" in dict(r.timings)


def test_stop_request_abandons_the_boot_and_cleans_up(lab: Lab, tmp_path: Path) -> None:
    holder: list[BootLoop] = []
    hook = Hook(holder)
    rig = Rig(lab, tmp_path, [Script()], hooks_for=lambda req: [hook])
    holder.append(rig.loop)
    results = rig.run(cell(boots=3))
    assert results == []
    assert rig.lines() == []  # nothing half-done is recorded
    assert rig.backend.defined == {}
    assert rig.calls("undefine") == rig.calls("define")
    assert rig.loop.stopping


def test_interrupt_from_the_connector_cleans_up(lab: Lab, tmp_path: Path) -> None:
    class Boom(FakeConnector):
        def connect(self, domain: Domain, timeout: float) -> Any:
            raise KeyboardInterrupt

    rig = Rig(lab, tmp_path, [Script()])
    rig.loop.connector_for = lambda h, g: Boom()
    with pytest.raises(KeyboardInterrupt):
        rig.run(cell(boots=2))
    assert rig.backend.defined == {}
    assert rig.lines() == []


def test_consumer_closing_the_generator_cleans_up_warm_domain(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script()])
    gen = rig.loop.run_chunk(cell(boots=3, reboot=RebootMode.WARM), [0, 1, 2])
    first = next(gen)
    assert first.outcome is Outcome.OK and len(rig.backend.defined) == 1
    gen.close()
    assert rig.backend.defined == {}
    assert len(rig.lines()) == 1


def test_user_network_hosts_get_distinct_ssh_ports(lab: Lab, tmp_path: Path) -> None:
    seen: list[int | None] = []

    def script(req: BootRequest) -> Script:
        seen.append(req.ssh_port)
        return Script()

    rig = Rig(lab, tmp_path, script)
    rig.run(cell(boots=3))
    assert all(isinstance(p, int) and p > 0 for p in seen)
    rig2 = Rig(lab, tmp_path / "b", script)
    rig2.run(cell(boots=1, host="node-1"))
    assert seen[-1] is None  # bridged hosts: no forward


def test_real_classifier_reads_bringup_latency_and_failure(lab: Lab, tmp_path: Path) -> None:
    from harness.testing.fakes import ok_dmesg

    dmesg = ok_dmesg(4).replace(
        "[    0.103000] CPU2: Booted secondary processor 0x0000000002 [0x410fd034]\n",
        "[    5.103000] CPU2: failed to come online\n"
        "[    5.103100] CPU2: failed in unknown state : 0x0\n")
    rig = Rig(lab, tmp_path, [Script(dmesg=ok_dmesg(4)), Script(dmesg=dmesg, online="0-1,3")],
              classify=None)
    ok, bad = rig.run(cell(vcpus=4, boots=2))
    assert ok.outcome is Outcome.OK
    assert ok.bringup_latency_s == pytest.approx(0.003, abs=1e-6)
    assert bad.outcome is Outcome.VCPU_OFFLINE and bad.offline_cpus == (2,)
    assert any(f.kind == "cpu_failed_online" and f.cpu == 2 for f in bad.findings)


def test_results_are_frozen_records(lab: Lab, tmp_path: Path) -> None:
    rig = Rig(lab, tmp_path, [Script()])
    (r,) = rig.run(cell(boots=1))
    with pytest.raises(AttributeError):
        r.outcome = Outcome.OK
    assert replace(r, index=9).index == 9


@pytest.mark.parametrize("mode", [RebootMode.COLD, RebootMode.WARM])
def test_forwarded_ports_are_given_back(lab: Lab, tmp_path: Path, mode: RebootMode) -> None:
    from harness import bootloop

    seen: list[int] = []

    def script(req: BootRequest) -> Script:
        assert req.ssh_port is not None
        seen.append(req.ssh_port)
        return Script(define_error="define_refused") if len(seen) == 1 else Script()

    rig = Rig(lab, tmp_path, script)
    results = rig.run(cell(boots=2, reboot=mode))
    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]
    assert not set(seen) & bootloop._ports_in_use


def test_meta_json_holds_every_field_of_the_result_as_asdict_would() -> None:
    from dataclasses import asdict

    from harness.model import BootResult, Finding, Outcome, Signature
    from harness.store.recorder import meta_json

    r = BootResult("r", "h/g/vcpu4", 3, Outcome.VCPU_OFFLINE, reason="CPU3 offline",
                   offline_cpus=(3,), online_cpus=(0, 1, 2),
                   findings=(Finding("cpu_failed_online", 7, "CPU3: failed to come online", 3),
                             Finding("psci_failed_boot", 9, "psci: failed to boot CPU3 (-22)",
                                     3, -22)),
                   signatures=(Signature("vcpu", "vCPU failed to come online"),),
                   timings=(("define", 1.5),), extra=(("domain", "hb-1"), ("n", {"a": [1]})))
    evidence = {"qemu_log": "x", "undefine_error": "busy"}
    text = meta_json(r, evidence)
    want = asdict(r) | {"evidence_names": ["qemu_log", "undefine_error"],
                        "errors": {"undefine_error": "busy"}}
    assert json.loads(text) == json.loads(json.dumps(want, default=str))
    assert text.count("\n") == 1 and text.endswith("}\n")  # one line, for jq and grep
