# vm-boot-harness: the Ansible inventory comes from the harness lab file (one source of truth).
"""Inventory plugin ``harness_lab``: a thin layer over ``harness.ansible_inventory``."""

from __future__ import annotations

import os

from ansible.errors import AnsibleParserError
from ansible.vars.reserved import get_reserved_names

from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: harness_lab
short_description: KVM hosts, their attributes and the guests from a vm-boot-harness lab file
description:
  - Reads the lab file of vm-boot-harness (hosts with their libvirt URI, attributes such as
    numa_patch, SSH settings and storage dir; guests with their image path) and makes the
    groups C(kvm_hosts) and C(controller).
  - Host attributes become host variables of the same name; the rest of each host entry
    becomes C(lab_*) variables; the guests become C(lab_guests) on C(kvm_hosts).
  - Needs the harness importable by the Python that runs Ansible
    (pip install vm-boot-harness[ansible]).
options:
  plugin:
    description: Marks the file as this plugin's configuration.
    required: true
    choices: [harness_lab]
  lab:
    description: The lab file, relative to this configuration file or absolute.
      The environment variable HARNESS_LAB overrides it.
    required: true
    type: str
  controller:
    description: Inventory name of the machine that runs the nightly harness.
    type: str
    default: localhost
  controller_vars:
    description: Variables of the controller (e.g. ansible_host, ansible_user).
    type: dict
    default: {}
  use_lab_known_hosts:
    description: Check SSH host keys against the lab's known_hosts file, as the harness does.
    type: bool
    default: true
"""

EXAMPLES = r"""
plugin: harness_lab
lab: ../../matrices/labs/eas-66611-lab.yaml
controller: localhost
"""


class InventoryModule(BaseInventoryPlugin):  # type: ignore[misc]
    NAME = "harness_lab"

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(
            (".harness_lab.yml", ".harness_lab.yaml")
        )

    def parse(self, inventory, loader, path, cache=True):  # type: ignore[no-untyped-def]
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        try:
            from harness.ansible_inventory import lab_inventory
            from harness.errors import ConfigError
            from harness.inventory import load_lab
        except ImportError as exc:
            raise AnsibleParserError(
                f"{path}: the harness_lab inventory needs vm-boot-harness importable by the "
                f"Python running Ansible (pip install 'vm-boot-harness[ansible]'): {exc}"
            ) from exc
        lab_path = os.environ.get("HARNESS_LAB") or self.get_option("lab")
        if not os.path.isabs(lab_path):
            lab_path = os.path.join(os.path.dirname(os.path.abspath(path)), lab_path)
        try:
            inv = lab_inventory(
                load_lab(lab_path),
                controller=self.get_option("controller"),
                controller_vars=self.get_option("controller_vars"),
                reserved=get_reserved_names(),
                use_lab_known_hosts=self.get_option("use_lab_known_hosts"),
            )
        except ConfigError as exc:
            raise AnsibleParserError(f"lab file {lab_path}: {exc}") from exc
        for group, hosts in inv.groups.items():
            self.inventory.add_group(group)
            for host in hosts:
                self.inventory.add_host(host, group=group)
            for key, value in inv.group_vars.get(group, {}).items():
                self.inventory.set_variable(group, key, value)
        for host, variables in inv.host_vars.items():
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
