"""The stall injector's choices (pure) and its wiring from the lab file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.backend.base import BootRequest
from harness.errors import ConfigError, InfraError
from harness.inventory import GuestSpec, HostSpec, StallFault, load_lab
from harness.lab.stall import StallHook, choose, hooks_for
from harness.model import Cell


def _req(index: int, vcpus: int = 4, run: str = "r1") -> BootRequest:
    cell = Cell(id=f"h/g/vcpu{vcpus}", matrix="m", host="h", guest="g", vcpus=vcpus, boots=1)
    return BootRequest(run_id=run, cell=cell, host_name="h",
                       host=HostSpec(uri="qemu:///system"), guest_name="g", guest=GuestSpec(),
                       domain_name=f"hb-{index}", boot_index=index, workdir=Path("/tmp"))


def test_choice_is_reproducible_and_picks_a_secondary() -> None:
    f = StallFault(probability=0.5)
    picks = [choose(f, _req(i), "host:h") for i in range(400)]
    assert picks == [choose(f, _req(i), "host:h") for i in range(400)]
    stalled = [p for p in picks if p is not None]
    assert 150 < len(stalled) < 250  # ~0.5 of 400
    assert set(stalled) == {1, 2, 3}  # never the boot CPU 0
    assert picks != [choose(f, _req(i, run="r2"), "host:h") for i in range(400)]


def test_fixed_cpu_probability_bounds_and_small_domains() -> None:
    assert all(choose(StallFault(probability=1.0, cpu=3), _req(i), "s") == 3 for i in range(20))
    assert all(choose(StallFault(probability=0.0), _req(i), "s") is None for i in range(50))
    assert choose(StallFault(probability=1.0), _req(0, vcpus=1), "s") is None
    assert choose(StallFault(probability=1.0, cpu=7), _req(0, vcpus=4), "s") is None


class _NoThreads:
    name = "hb-x"


def test_a_backend_without_vcpu_threads_is_an_infra_error() -> None:
    hook = StallHook(StallFault(probability=1.0), "host:h")
    with pytest.raises(InfraError, match="cannot list vCPU threads"):
        hook.before_resume(_NoThreads(), _req(0))  # type: ignore[arg-type]


def test_a_boot_without_stall_says_so() -> None:
    hook = StallHook(StallFault(probability=0.0), "host:h")
    assert hook.before_resume(_NoThreads(), _req(0)) == {  # type: ignore[arg-type]
        "stall": None, "stall_source": "host:h"}
    hook.after_stop(_NoThreads(), _req(0))  # type: ignore[arg-type]


LAB = """\
name: t
hosts:
  local: {uri: "qemu:///system"}
  far:
    uri: qemu+ssh://root@node-1/system
    fault:
      stall: {probability: 0.5}
guests:
  g: {boot: {kernel: /k}}
"""


def test_a_stall_on_a_remote_host_without_ssh_is_a_located_config_error(
        tmp_path: Path) -> None:
    f = tmp_path / "lab.yaml"
    f.write_text(LAB)
    with pytest.raises(ConfigError) as e:
        hooks_for(load_lab(f))
    assert e.value.where is not None and e.value.where.line == 6
    assert "over SSH on a remote host" in str(e.value)


def test_a_stall_on_a_remote_host_with_ssh_is_driven_over_ssh(tmp_path: Path) -> None:
    from harness.lab.remote_freeze import RemoteFreeze
    from harness.lab.stall import make_freeze

    f = tmp_path / "lab.yaml"
    f.write_text(LAB.replace("    fault:", "    ssh: {user: root}\n    fault:"))
    lab = load_lab(f)
    make = hooks_for(lab)
    assert make is not None
    req = _req(0)
    far = BootRequest(**{**req.__dict__, "host_name": "far", "host": lab.host("far")})
    hooks = make(far)
    stall = [h for h in hooks if type(h).__name__ == "StallHook"]
    assert len(stall) == 1 and stall[0].source == "host:far"

    class _Remote:
        remote = True

        def host_command(self, cmd: str) -> str:
            return "cgroup1 /sys/fs/cgroup/freezer/vmbh-stall-d-7 /sys/fs/cgroup/freezer/\n"

    class _Dom:
        name = "d"
        backend = _Remote()

    fr = make_freeze(_Dom(), 7)  # type: ignore[arg-type]
    assert isinstance(fr, RemoteFreeze)
    fr.freeze()
    assert (fr.method, fr.path) == ("cgroup1", "/sys/fs/cgroup/freezer/vmbh-stall-d-7")


def test_hooks_per_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.lab.stall.enable_subreaper", lambda: True)  # no prctl here
    f = tmp_path / "lab.yaml"
    f.write_text(LAB.replace("qemu+ssh://root@node-1/system", "qemu:///embed?root=/tmp/x"))
    lab = load_lab(f)
    make = hooks_for(lab)
    assert make is not None
    req = _req(0)
    far = BootRequest(**{**req.__dict__, "host_name": "far", "host": lab.host("far")})
    hooks = make(far)
    # the sampler stops sampling before the stall hook kills QEMU (before_stop order)
    assert [type(h).__name__ for h in hooks] == ["ReapHook", "VcpuSampler", "StallHook"]
    assert hooks[2].source == "host:far"
    local = BootRequest(**{**req.__dict__, "host_name": "local", "host": lab.host("local")})
    # qemu:///system: QEMU is libvirtd's child, nothing to reap; its vCPUs are sampled
    assert [type(h).__name__ for h in make(local)] == ["VcpuSampler"]
    assert make(req) == []  # a host the lab does not know
    f.write_text(LAB.replace("qemu+ssh://root@node-1/system", "qemu:///system")
                 .replace("    fault:\n      stall: {probability: 0.5}\n", ""))
    plain = hooks_for(load_lab(f))
    assert plain is not None and [type(h).__name__ for h in plain(local)] == ["VcpuSampler"]


def test_reap_hook_ignores_processes_that_are_not_our_children() -> None:
    from harness.lab.reaper import ReapHook, parent_of, reap_when_done

    assert parent_of(os.getpid()) == os.getppid()
    assert reap_when_done(1) is None

    class _Dom:
        name = "hb-x"

        def vcpu_threads(self) -> dict[int, int]:
            return {0: 1}  # PID 1's main thread: not our child

    hook = ReapHook()
    assert hook.before_resume(_Dom(), _req(0)) is None  # type: ignore[arg-type]
    assert hook.thread is None
    hook.after_stop(_Dom(), _req(0))  # type: ignore[arg-type]


def test_a_stall_thawed_after_the_failure_takes_the_last_secondary() -> None:
    late = StallFault(probability=1.0, thaw_after_failure=True)
    assert {choose(late, _req(i, vcpus=4), "s") for i in range(20)} == {3}
    assert choose(late, _req(0, vcpus=2), "s") == 1
    assert choose(StallFault(probability=1.0, cpu=1, thaw_after_failure=True),
                  _req(0, vcpus=4), "s") == 1  # a fixed CPU is the user's choice
