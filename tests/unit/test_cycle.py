"""CPU cycle mode: trial bookkeeping (indices, schedule, commands), the parse of what the
guest answers, the trial decision, the second-phase link; the matrix keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness import cycle
from harness.classify import classify
from harness.matrix import load_matrix
from harness.model import Cell, Outcome, RebootMode


def _cell(vcpus: int = 4, boots: int = 3, cycles: int = 2) -> Cell:
    return Cell(id=f"h/g/vcpu{vcpus}", matrix="m", host="h", guest="g", vcpus=vcpus,
                boots=boots, reboot=RebootMode.CPU_CYCLE, params=(("cycles", cycles),))


def test_indices_never_collide_with_boots_or_each_other() -> None:
    cell = _cell(vcpus=4, boots=3, cycles=2)
    assert cycle.trials_per_boot(cell) == 6
    assert cycle.schedule(cell) == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    idx = [cycle.trial_index(cell, b, t) for b in range(3) for t in range(6)]
    assert idx == list(range(3, 3 + 18))  # after the boots 0..2, no gap, no repeat
    assert cycle.trials_per_boot(_cell(vcpus=1)) == 0 and cycle.schedule(_cell(vcpus=1)) == []
    assert cycle.cycles_of(Cell(id="x", matrix="m", host="h", guest="g", vcpus=2, boots=1)) \
        == cycle.DEFAULT_CYCLES


def test_trial_command_takes_only_a_secondary_cpu_id() -> None:
    cmd = cycle.trial_command(3, 4)
    assert "/sys/devices/system/cpu/cpu3/online" in cmd and "{" not in cmd.split("${")[0]
    for bad in (0, 4, -1, True, "1; reboot"):
        with pytest.raises(ValueError, match="is not a secondary CPU"):
            cycle.trial_command(bad, 4)  # type: ignore[arg-type]


OK_OUT = ("vmbh-trial off=0 on=0 up0=12.34 up1=12.41 state=1 online=0-3\n"
          "[   12.350000] psci: CPU2 killed (polled 0 ms)\n"
          "[   12.400000] CPU2: Booted secondary processor 0x0000000002 [0x410fd083]\n")
SECOND_PHASE = ("vmbh-trial off=0 on=1 up0=20.00 up1=20.01 state=0 online=0-1,3\n"
                "[   20.001000] psci: failed to boot CPU2 (-22)\n"
                "[   20.001100] CPU2: failed to boot: -22\n")


def test_parse_trial_output() -> None:
    out = cycle.parse_trial("noise\n" + OK_OUT)
    assert out is not None and out.off == 0 and out.on == 0 and out.guest_s == 0.07
    assert out.state == "1" and out.online == "0-3" and "Booted secondary" in out.dmesg
    assert cycle.parse_trial("no marker at all") is None
    odd = cycle.parse_trial("vmbh-trial off=x on=99999999 up0=1e9 up1= state=\n")
    assert odd is not None and odd.off is None and odd.on is None and odd.guest_s is None


def _ev(stdout: str = "", cpu: int = 2, **kw: object) -> cycle.TrialEvidence:
    ev = cycle.TrialEvidence(cycle=0, cpu=cpu, started=100.0, ended=100.25, stdout=stdout,
                             exit_status=0)
    for k, v in kw.items():
        setattr(ev, k, v)
    return ev


def test_decide_trial_follows_the_boot_rules() -> None:
    ok = cycle.decide_trial(_ev(OK_OUT), 4)
    assert ok.outcome is Outcome.OK and ok.online == (0, 1, 2, 3)
    bad = cycle.decide_trial(_ev(SECOND_PHASE, stderr="sh: write error: Invalid argument"), 4)
    assert bad.outcome is Outcome.VCPU_OFFLINE and bad.offline == (2,)
    assert bad.reason == ("trial: CPU2 online, cycle 1: CPU 2 offline (3/4 online); online "
                          "write exit 1: sh: write error: Invalid argument")
    lost = cycle.decide_trial(_ev(infra="ssh_lost: connection reset"), 4)
    assert lost.outcome is Outcome.INFRA_ERROR
    hung = cycle.decide_trial(_ev(failure="the guest stopped answering"), 4)
    assert hung.outcome is Outcome.BOOT_FAILURE
    silent = cycle.decide_trial(_ev("garbage"), 4)
    assert silent.outcome is Outcome.BOOT_FAILURE and "did not report" in silent.reason
    badlist = cycle.decide_trial(_ev(OK_OUT.replace("online=0-3", "online=zz")), 4)
    assert badlist.outcome is Outcome.BOOT_FAILURE and "cannot read" in badlist.reason
    # the write said 0 but another CPU is gone: still the online list decides
    other = cycle.decide_trial(_ev(OK_OUT.replace("online=0-3", "online=0-2")), 4)
    assert other.outcome is Outcome.VCPU_OFFLINE and other.offline == (3,)
    # ... unless that CPU was offline before the trial already (counted where it failed)
    known = cycle.decide_trial(_ev(OK_OUT.replace("online=0-3", "online=0-2")), 4,
                               before=(0, 1, 2))
    assert known.outcome is Outcome.OK and known.reason == "CPU 3 still offline from before"
    # the trial's own CPU counts even when it was offline before (the second phase)
    again = cycle.decide_trial(_ev(SECOND_PHASE), 4, before=(0, 1, 3))
    assert again.outcome is Outcome.VCPU_OFFLINE and again.offline == (2,)


def test_second_phase_is_its_own_signature_and_links_the_first() -> None:
    cell = _cell(vcpus=4, boots=2, cycles=1)
    history = cycle.CpuHistory()
    boot_dmesg = ("[    9.9] CPU2: failed to come online\n"
                  "[    9.9] CPU2: failed in unknown state : 0x0\n")
    boot_cls = classify(boot_dmesg, expected_cpus=4)
    history.note_boot(1, (2,), cycle.failure_messages(boot_cls.findings))
    r = cycle.trial_result("run", cell, 1, 1, _ev(SECOND_PHASE), history, "hb-d",
                           {"dmesg": "x/dmesg.txt"}, classify=classify)
    assert r.index == cycle.trial_index(cell, 1, 1) == 2 + 3 + 1
    assert r.outcome is Outcome.VCPU_OFFLINE and r.offline_cpus == (2,)
    kinds = [s.kind for s in r.signatures]
    assert "psci_already_on" in kinds and "psci_failed_boot" in kinds
    trial = dict(r.extra)["trial"]
    assert trial["phase"] == "second" and trial["cpu"] == 2 and trial["boot"] == 1
    assert trial["first_phase"] == {"index": 1, "kind": "boot",
                                    "message": "CPU2: failed to come online"}
    assert [f.errno for f in r.findings if f.kind == "psci_failed_boot"] == [-22]
    # a clean trial of another CPU: ok, no link, its latency is the guest's online time
    ok = cycle.trial_result("run", cell, 1, 0, _ev(OK_OUT, cpu=1), history, "hb-d", {},
                            classify=classify)
    assert ok.outcome is Outcome.OK and "first_phase" not in dict(ok.extra)["trial"]
    assert ok.bringup_latency_s == 0.07 and ok.signatures == ()
    # a first failure in a trial is the first phase for the trials after it
    fresh = cycle.CpuHistory()
    first = cycle.trial_result("run", cell, 0, 0, _ev(SECOND_PHASE.replace(
        "psci: failed to boot CPU2 (-22)", "CPU2: failed to come online"), cpu=2), fresh,
        "hb-d", {}, classify=classify)
    assert first.outcome is Outcome.VCPU_OFFLINE
    assert not any(s.kind == "psci_already_on" for s in first.signatures)
    assert fresh.first[2]["index"] == first.index and fresh.first[2]["kind"] == "trial"


def test_matrix_cpu_cycle_and_cycles(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(textwrap.dedent("""\
        name: l
        hosts: {h: {uri: "qemu:///system"}}
        guests: {g: {boot: {kernel: /k}}}
        """))
    (tmp_path / "m.yaml").write_text(textwrap.dedent("""\
        name: m
        lab: lab.yaml
        axes: {host: [h], guest: [g], vcpus: [4], reboot: [cold, cpu-cycle]}
        cycles: 7
        boots: 2
        """))
    m = load_matrix(tmp_path / "m.yaml")
    cold, cyc = m.cells
    assert cold.reboot is RebootMode.COLD and dict(cold.params) == {}
    assert cyc.reboot is RebootMode.CPU_CYCLE and cycle.cycles_of(cyc) == 7
    assert cyc.id == "h/g/vcpu4/reboot=cpu-cycle"
    (tmp_path / "m.yaml").write_text(textwrap.dedent("""\
        name: m
        lab: lab.yaml
        axes: {host: [h], guest: [g], vcpus: [4], cycles: [1, 5]}
        reboot: cpu-cycle
        """))
    ids = [c.id for c in load_matrix(tmp_path / "m.yaml").cells]
    assert ids == ["h/g/vcpu4/cycles=1", "h/g/vcpu4/cycles=5"]
    (tmp_path / "m.yaml").write_text(textwrap.dedent("""\
        name: m
        lab: lab.yaml
        axes: {host: [h], guest: [g], vcpus: [4], cycles: [0]}
        """))
    with pytest.raises(Exception, match=r"m.yaml:3:\d+: cycles: 0 is out of range"):
        load_matrix(tmp_path / "m.yaml")


def test_cpu_cycle_on_a_simulated_host_is_a_located_error(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    sim = (repo / "matrices" / "eas-66611-sim.yaml").read_text()
    lab = repo / "matrices" / "labs" / "eas-66611-sim-lab.yaml"
    text = sim.replace("lab: labs/eas-66611-sim-lab.yaml", f"lab: {lab}")
    text = text.replace("reboot: cold", "reboot: cpu-cycle")
    assert "reboot: cpu-cycle" in text
    (tmp_path / "m.yaml").write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("reboot:"))
    with pytest.raises(Exception, match=rf"m.yaml:{line}:9: reboot: cpu-cycle needs real "
                                        r"guests; host 'node-1' is simulated"):
        load_matrix(tmp_path / "m.yaml")
