"""Controller-side checks made once, before the first boot of a run or campaign.

A problem on the controller's side that no boot can fix (a guest's or host's SSH key file
missing, a folder, unreadable, not a key; the lab's known_hosts unreadable) would
otherwise show up boot after boot as "guest not ready" until the boot timeout: counted as
guest failures. It is a configuration error instead, located in the lab file
(``file:line:column``, exit status 2), found before anything is booted.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import ConfigError, ConfigErrors
from harness.inventory import Lab
from harness.model import Cell


def check_ssh_files(lab: Lab, cells: Iterable[Cell]) -> None:
    """Raise ``ConfigError`` (several: ``ConfigErrors``) for every unusable SSH file the
    cells' real (not simulated) hosts and guests would use."""
    cells = list(cells)
    real = sorted({c.host for c in cells if not lab.host(c.host).is_sim})
    if not real:
        return
    guests = sorted({c.guest for c in cells if not lab.host(c.host).is_sim})
    from harness.collect.ssh import key_problem, known_hosts_problem  # paramiko: only now

    errors: list[ConfigError] = []
    for g in guests:
        key = lab.guest(g).ssh.key
        if key is not None and (problem := key_problem(key)):
            errors.append(lab.doc.error(("guests", g, "ssh", "key"), problem))
    for h in real:
        ssh = lab.host(h).ssh
        key = ssh.key if ssh is not None else None
        if key is not None and (problem := key_problem(key)):
            errors.append(lab.doc.error(("hosts", h, "ssh", "key"), problem))
    if problem := known_hosts_problem(lab.known_hosts):
        errors.append(lab.doc.error(("ssh", "known_hosts"), problem))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigErrors(errors)
