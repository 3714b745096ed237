from __future__ import annotations

import os
from pathlib import Path

from harness.lab.freezer import parse_mountinfo, parse_proc_cgroup, thread_cgroups

MOUNTINFO = """\
25 20 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
30 25 0:27 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
31 25 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 25 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
40 20 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,name=x
"""


def test_parse_mountinfo_keeps_cgroup_mounts_only() -> None:
    ms = parse_mountinfo(MOUNTINFO)
    assert [(m.fstype, str(m.path)) for m in ms] == [
        ("cgroup", "/sys/fs/cgroup/freezer"), ("cgroup", "/sys/fs/cgroup/cpu"),
        ("cgroup2", "/sys/fs/cgroup/unified"), ("cgroup", "/mnt/with space")]
    assert "freezer" in ms[0].options and "freezer" not in ms[1].options


def test_parse_proc_cgroup_v1_and_v2_lines() -> None:
    text = ("6:freezer:/machine/qemu-1-x.libvirt-qemu\n4:cpu,cpuacct:/\n"
            "1:name=systemd:/init.scope\n0::/machine/qemu-1-x.libvirt-qemu/vcpu2\n")
    got = parse_proc_cgroup(text)
    assert got["freezer"] == "/machine/qemu-1-x.libvirt-qemu"
    assert got["cpu"] == got["cpuacct"] == "/"
    assert got[""] == "/machine/qemu-1-x.libvirt-qemu/vcpu2"


def test_this_machine_parses() -> None:
    assert parse_mountinfo(Path("/proc/self/mountinfo").read_text()) is not None
    assert isinstance(thread_cgroups(os.getpid()), dict)
