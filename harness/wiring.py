"""Which backend and connector boot each host of a lab: simulated hosts get the simulated
lab (``harness.backend.sim``), the others libvirt (one connection per URI, shared by the
lab "hosts" that name the same libvirt) and SSH. ``harness run`` and ``harness bisect``
both wire their boot loop with ``lab_parts``; tests hand in their own factories."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.backend.base import Backend, Connector
from harness.inventory import Lab
from harness.sim.clock import SimClock

BackendFor = Callable[[str], Backend]
ConnectorFor = Callable[[str, str], Connector]


@dataclass(frozen=True)
class LabParts:
    backend_for: BackendFor
    connector_for: ConnectorFor
    clock: SimClock | None  # the simulated hosts' virtual clock (None: none is simulated)
    sim_only: bool  # every host given is simulated: the boot loop runs on ``clock``

    def loop_clock(self) -> dict[str, Any]:
        """``BootLoop`` keyword arguments: the virtual clock when every host is simulated
        (a 300 s boot timeout then costs nothing), else none (real time)."""
        if self.clock is None or not self.sim_only:
            return {}
        return {"clock": self.clock.now, "sleep": self.clock.sleep}


def lab_parts(lab: Lab, hosts: Iterable[str], time_scale: float = 0.0, *,
              backend_for: BackendFor | None = None,
              connector_for: ConnectorFor | None = None) -> LabParts:
    """Factories for the boot loop over ``hosts`` of ``lab``; ``backend_for`` and
    ``connector_for``, when given, replace the lab's own (tests)."""
    hosts = set(hosts)
    sim_hosts = {h for h in hosts if lab.host(h).is_sim}
    clock = SimClock(time_scale) if sim_hosts else None
    sim = None
    if clock is not None:
        from harness.backend.sim import SimLab

        sim = SimLab(lab, clock)
    real: dict[str, Backend] = {}
    ssh: list[ConnectorFor] = []
    lock = threading.Lock()

    def lab_backend(host: str) -> Backend:
        if sim is not None and host in sim_hosts:
            return sim.backend_for(host)
        uri = lab.host(host).uri
        with lock:  # one connection per URI: several lab "hosts" may share one libvirt
            if uri not in real:
                from harness.backend.libvirt import LibvirtBackend

                # host evidence (host dmesg, QEMU log, versions) over SSH when the lab
                # file gives the host an ``ssh:`` section
                real[uri] = LibvirtBackend.for_host(lab, host)
            return real[uri]

    def lab_connector(host: str, guest: str) -> Connector:
        if sim is not None and host in sim_hosts:
            return sim.connector_for(host, guest)
        with lock:
            if not ssh:
                from harness.collect.ssh import lab_connector_factory

                ssh.append(lab_connector_factory(lab))
        return ssh[0](host, guest)

    return LabParts(backend_for or lab_backend, connector_for or lab_connector, clock,
                    bool(hosts) and sim_hosts == hosts)
