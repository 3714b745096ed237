"""The stall injector's freezer on a remote libvirt host: the same cgroup freezer as
``freezer.py`` (v2 ``cgroup.freeze`` on the vCPU thread's own cgroup, else a v1 freezer
cgroup of our own), done by fixed shell scripts run over SSH on the host. Nothing is
installed on the host; the scripts are constants filled only with integers and a
checked domain name.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Callable

from harness.collect.commands import SAFE_NAME
from harness.errors import InfraError

FREEZE_SCRIPT = r"""exec 2>&1  # the caller reads stdout only: errors must show there
set -e
t={tid}
[ -d /proc/$t ] || {{ echo "no thread $t" >&2; exit 3; }}
v2=$(awk '$3=="cgroup2"{{print $2; exit}}' /proc/mounts)
rel=$(sed -n 's/^0:://p' /proc/$t/cgroup)
if [ -n "$v2" ] && [ -n "$rel" ] && [ -e "$v2$rel/cgroup.freeze" ] && \
   [ "$(cat "$v2$rel/cgroup.threads" 2>/dev/null)" = "$t" ]; then
  echo 1 > "$v2$rel/cgroup.freeze"; echo "cgroup2 $v2$rel -"; exit 0
fi
fz=$(awk '$3=="cgroup" && $4 ~ /(^|,)freezer(,|$)/ {{print $2; exit}}' /proc/mounts)
if [ -z "$fz" ]; then  # no v1 freezer mounted: mount our own, as freezer.py does
  fz=/run/vm-boot-harness/freezer
  mkdir -p $fz
  mount -t cgroup -o freezer vmbh-freezer $fz 2>/dev/null || \
    {{ echo "no cgroup freezer on this host (and none could be mounted)" >&2; exit 4; }}
fi
orig=$(sed -n 's/^[0-9]*:freezer://p' /proc/$t/cgroup)
d="$fz/vmbh-stall-{name}-$t"
mkdir -p "$d"
echo $t > "$d/tasks"
echo FROZEN > "$d/freezer.state"
i=0; while [ "$(cat "$d/freezer.state")" != FROZEN ] && [ $i -lt 200 ]; do
  sleep 0.01; i=$((i+1)); done
echo "cgroup1 $d $fz$orig"
"""

THAW_V2 = "echo 0 > {path}"
THAW_V1 = """echo THAWED > {path}/freezer.state 2>/dev/null || true
echo {tid} > {origin}/tasks 2>/dev/null || true
i=0; while ! rmdir {path} 2>/dev/null && [ -d {path} ] && [ $i -lt 50 ]; do
  sleep 0.05; i=$((i+1)); done; true"""
KILL_QEMU = """p=$(awk '/^Tgid:/{{print $2}}' /proc/{tid}/status 2>/dev/null) && \
[ -n "$p" ] && kill -9 "$p" 2>/dev/null; true"""


def parse_freeze_output(text: str) -> tuple[str, str, str | None]:
    """``cgroup2 PATH -`` or ``cgroup1 PATH ORIGIN`` -> (method, path, origin)."""
    parts = text.strip().splitlines()[-1].split() if text.strip() else []
    if len(parts) != 3 or parts[0] not in ("cgroup1", "cgroup2"):
        raise ValueError(f"unexpected answer from the host's freezer script: {text!r}")
    return parts[0], parts[1], None if parts[2] == "-" else parts[2]


class RemoteFreeze:
    """One frozen vCPU thread on a remote host; the interface of ``freezer.Freeze``."""

    def __init__(self, tid: int, name: str, host_command: Callable[[str], str]) -> None:
        if not re.fullmatch(SAFE_NAME, name):
            raise InfraError(f"domain name {name!r} is not safe for a host command",
                             reason="stall_injector", retryable=False)
        self.tid = int(tid)
        self.name = name
        self.run = host_command
        self.method = ""
        self.path: str | None = None
        self.origin: str | None = None
        self.frozen = False

    def freeze(self, wait_s: float = 2.0) -> None:
        try:
            out = self.run(FREEZE_SCRIPT.format(tid=self.tid, name=self.name))
            self.method, self.path, self.origin = parse_freeze_output(out)
        except (ValueError, InfraError) as exc:
            raise InfraError(f"cannot freeze thread {self.tid} on the host: {exc}",
                             reason="stall_injector") from exc
        self.frozen = True

    def kill_process(self) -> None:
        with contextlib.suppress(InfraError):
            self.run(KILL_QEMU.format(tid=self.tid))

    def thaw(self) -> None:
        path, self.frozen = self.path, False
        if path is None:
            return
        try:
            if self.method == "cgroup2":
                self.run(THAW_V2.format(path=shlex.quote(path + "/cgroup.freeze")))
            else:
                self.run(THAW_V1.format(path=shlex.quote(path), tid=self.tid,
                                        origin=shlex.quote(self.origin or "")))
        except InfraError:
            return  # the host is gone: nothing left to thaw here
        self.path = None
