"""The Ansible inventory of a lab, generated from the lab file (the one source of truth).

The ``harness_lab`` inventory plugin under ``ansible/plugins/inventory/`` calls
:func:`lab_inventory`; ``python -m harness.ansible_inventory LAB.yaml`` prints the same
inventory in the JSON shape of ``ansible-inventory --list``, to look at it.

Mapping (documented in ``ansible/README.md``):

- every host whose URI names a machine (``qemu+ssh://root@node-1/system``) joins the group
  ``kvm_hosts``; a local URI (``qemu:///system``) maps to a local connection; simulated
  hosts (``sim:///``) are left out, there is nothing to provision;
- connection: ``ansible_host``/``ansible_user``/``ansible_port``/key from the host's
  ``ssh`` section, else from the URI; the lab's ``known_hosts`` file is used for SSH;
- each host attribute becomes a host variable of the same name (``numa_patch``, ``cpu``);
- the rest of the host entry becomes ``lab_*`` variables (``lab_storage_dir``,
  ``lab_bridge``, ``lab_firmware_code``...), and the guests become ``lab_guests`` on the
  ``kvm_hosts`` group (what ``guest_images`` builds);
- the controller, which is not part of the lab, is one host in the group ``controller``.
"""

from __future__ import annotations

import json
import keyword
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.errors import ConfigError
from harness.inventory import HostSpec, Lab, load_lab

KVM_GROUP = "kvm_hosts"
CONTROLLER_GROUP = "controller"
DEFAULT_STORAGE_DIR = "/var/lib/libvirt/images/harness"


@dataclass(frozen=True)
class Inventory:
    """Groups with their hosts and variables, and each host's variables."""

    groups: dict[str, list[str]]
    group_vars: dict[str, dict[str, Any]]
    host_vars: dict[str, dict[str, Any]]
    skipped: tuple[str, ...] = field(default=())  # simulated hosts, nothing to provision

    def as_script_json(self) -> dict[str, Any]:
        """The ``--list`` output of a dynamic inventory script."""
        out: dict[str, Any] = {"_meta": {"hostvars": self.host_vars}}
        out["all"] = {"children": sorted(self.groups)}
        for name, hosts in self.groups.items():
            out[name] = {"hosts": hosts, "vars": self.group_vars.get(name, {})}
        return out


def lab_inventory(
    lab: Lab,
    *,
    controller: str = "localhost",
    controller_vars: Mapping[str, Any] | None = None,
    reserved: Iterable[str] = (),
    use_lab_known_hosts: bool = True,
) -> Inventory:
    """Map a loaded lab to an inventory. ``reserved`` are variable names Ansible keeps for
    itself (the plugin passes Ansible's own list); an attribute by such a name is refused."""
    reserved_names = frozenset(reserved)
    host_vars: dict[str, dict[str, Any]] = {}
    kvm_hosts: list[str] = []
    skipped: list[str] = []
    for name, host in lab.hosts.items():
        if host.is_sim:
            skipped.append(name)
            continue
        _check_attributes(lab, name, host, reserved_names)
        hv = _connection_vars(host)
        if use_lab_known_hosts and hv.get("ansible_connection") != "local":
            hv["ansible_ssh_common_args"] = f"-o UserKnownHostsFile={lab.known_hosts.resolve()}"
        hv.update(host.attributes)
        hv.update(_lab_vars(host))
        host_vars[name] = hv
        kvm_hosts.append(name)
    if controller in host_vars:
        raise ConfigError(
            f"the controller {controller!r} is also a lab host; give it another inventory name"
        )
    cvars = dict(controller_vars or {})
    if controller in ("localhost", "127.0.0.1") and "ansible_connection" not in cvars:
        cvars["ansible_connection"] = "local"
        cvars.setdefault("ansible_python_interpreter", "{{ ansible_playbook_python }}")
    cvars["lab_file"] = str(lab.file.resolve())
    host_vars[controller] = cvars
    common = {"lab_name": lab.name, "lab_file": str(lab.file.resolve())}
    return Inventory(
        groups={KVM_GROUP: kvm_hosts, CONTROLLER_GROUP: [controller]},
        group_vars={
            KVM_GROUP: {**common, "lab_guests": guests_vars(lab)},
            CONTROLLER_GROUP: dict(common),
        },
        host_vars=host_vars,
        skipped=tuple(skipped),
    )


def guests_vars(lab: Lab) -> dict[str, dict[str, Any]]:
    """What the ``guest_images`` role needs of each guest: where its image lands, the kernel
    it should run, how the harness logs in."""
    out: dict[str, dict[str, Any]] = {}
    for name, guest in lab.guests.items():
        boot = guest.boot
        out[name] = {
            "image": str(boot.image) if boot is not None and boot.image else None,
            "kernel": str(boot.kernel) if boot is not None and boot.kernel else None,
            "kernel_release": guest.kernel_release,
            "os": guest.os,
            "ssh_user": guest.ssh.user,
            "ssh_key": str(guest.ssh.key) if guest.ssh.key else None,
        }
    return out


def _connection_vars(host: HostSpec) -> dict[str, Any]:
    parsed = urlparse(host.uri)
    address = (host.ssh.host if host.ssh and host.ssh.host else None) or parsed.hostname
    if address is None:  # qemu:///system: this very machine
        return {"ansible_connection": "local", "ansible_host": "localhost"}
    hv: dict[str, Any] = {"ansible_host": address}
    if host.ssh is not None:
        hv["ansible_user"] = host.ssh.user
        hv["ansible_port"] = host.ssh.port
        if host.ssh.key is not None:
            hv["ansible_ssh_private_key_file"] = str(host.ssh.key)
    else:
        hv["ansible_user"] = parsed.username or "root"
        hv["ansible_port"] = parsed.port or 22
    return hv


def _lab_vars(host: HostSpec) -> dict[str, Any]:
    return {
        "lab_uri": host.uri,
        "lab_slots": host.slots,
        "lab_attributes": sorted(host.attributes),
        "lab_domain_type": host.effective_domain_type,
        "lab_machine": host.machine,
        "lab_storage_dir": str(host.storage_dir or DEFAULT_STORAGE_DIR),
        "lab_network_type": host.network.type,
        "lab_bridge": host.network.source if host.network.type == "bridge" else None,
        "lab_firmware_code": str(host.firmware.code),
        "lab_firmware_vars": str(host.firmware.vars),
    }


def _check_attributes(lab: Lab, name: str, host: HostSpec, reserved: frozenset[str]) -> None:
    for attr in host.attributes:
        why = None
        if not attr.isidentifier() or keyword.iskeyword(attr):
            why = "is not a valid variable name (letters, digits, '_')"
        elif attr.startswith(("ansible_", "lab_")) or attr in reserved:
            why = "is a name Ansible or the lab_* variables already use"
        if why:
            raise lab.doc.error(
                ("hosts", name, "attributes", attr),
                f"attribute {attr!r} of host {name!r} {why}; it becomes an Ansible host "
                "variable, rename it",
                key=True,
            )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m harness.ansible_inventory LAB.yaml", file=sys.stderr)
        return 2
    try:
        inv = lab_inventory(load_lab(Path(args[0])))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    json.dump(inv.as_script_json(), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
