"""The commands run in guests and on hosts: constants, never built from user strings."""

from __future__ import annotations

from typing import Final

from harness.errors import CollectError

DMESG: Final = "dmesg"
CPU_ONLINE: Final = "cat /sys/devices/system/cpu/online"
CPU_PRESENT: Final = "cat /sys/devices/system/cpu/present"
UNAME_R: Final = "uname -r"
NPROC: Final = "nproc"
BOOT_ID: Final = "cat /proc/sys/kernel/random/boot_id"  # tells a new boot from the old one
# warm reboot: detach so the SSH command returns before the connection drops
REBOOT: Final = "nohup sh -c 'sleep 1; reboot' >/dev/null 2>&1 &"
HOST_DMESG: Final = "dmesg"
# libvirt's QEMU log of one domain on a remote host; {name} is a harness domain name,
# checked against SAFE_NAME before use
HOST_QEMU_LOG: Final = "cat /var/log/libvirt/qemu/{name}.log"
SAFE_NAME: Final = r"[A-Za-z0-9_.-]+"
# the host's neighbour table (guest addresses on a bridge without libvirt DHCP)
HOST_NEIGH: Final = "ip -4 neigh show"
# what explains a result, read once per boot: host kernel, QEMU, libvirt daemon; the
# firmware file's digest is added with its (lab-file) path quoted by shlex
HOST_VERSIONS: Final = ("uname -r; qemu-system-aarch64 --version | head -n1; "
                        "libvirtd --version")
HOST_FILE_DIGEST: Final = "sha256sum -- {path}"

# what is collected after every successful login, name -> command (in this order)
GUEST_COLLECT: Final[tuple[tuple[str, str], ...]] = (
    ("online", CPU_ONLINE),
    ("present", CPU_PRESENT),
    ("uname_r", UNAME_R),
    ("nproc", NPROC),
    ("boot_id", BOOT_ID),
    ("dmesg", DMESG),
)


class CommandTimeout(CollectError):
    """A remote command did not finish within its timeout (the guest stopped answering)."""

    def __init__(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        super().__init__(f"command {command!r} did not finish within {timeout:g}s")
