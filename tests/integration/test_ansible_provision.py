"""site.yml, for real, against a throwaway host: sshd in a network namespace made here.

The namespace host shares this machine's filesystem, so every path the roles write is
pointed into a temporary folder. The inventory is the lab file (harness_lab plugin). The
playbook runs twice; the second run must change nothing. What cannot run here is said:
systemd is not PID 1 (units are written, not enabled) and there is no libvirt daemon to
own a storage pool (kvm_host_manage_libvirt is off); aarch64 images are not built.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
SUBNET = "198.19.77"  # RFC 2544 benchmarking space: never a real network here
HOST_IP, NS_IP = f"{SUBNET}.1", f"{SUBNET}.2"
SSHD = "/usr/sbin/sshd"
BRIDGE = "hbtest0"


# ansible from the environment running the tests (.venv in CI): the plugin imports harness
BIN_DIR = Path(sys.executable).parent
# running in a virtualenv (CI's .venv), the controller's venv cannot borrow its packages
IN_VENV = sys.prefix != sys.base_prefix


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace (ip netns)"
    if not (BIN_DIR / "ansible-playbook").exists():
        return f"ansible-core is not installed in {BIN_DIR} (pip install -e '.[ansible]')"
    for tool in ("ip", "ssh-keygen", "ssh", "qemu-img"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path(SSHD).exists():
        return "openssh-server (sshd) is not installed"
    return None


def _run(*argv: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


def _subnet_in_use() -> bool:
    out = _run("ip", "-o", "addr").stdout + _run("ip", "route").stdout
    return f" {SUBNET}." in out or f"{SUBNET}.0/" in out


@dataclass(frozen=True)
class NsHost:
    tmp: Path
    client_key: Path
    known_hosts: Path
    netns: str


@pytest.fixture
def ns_host() -> Iterator[NsHost]:
    why = _missing()
    if why:
        pytest.skip(why)
    if _subnet_in_use():
        pytest.skip(f"{SUBNET}.0/24 is already in use on this machine")
    netns = f"hbans{os.getpid()}"
    veth = f"hbv{os.getpid() % 100000}"
    # our own temp dir: pytest's are pruned by other pytest sessions on a shared machine
    tmp = Path(tempfile.mkdtemp(prefix="hb-ansible-"))
    made_privsep = False
    sshd: subprocess.Popen[bytes] | None = None
    try:
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _run("ip", "addr", "add", f"{HOST_IP}/24", "dev", veth)
        _run("ip", "link", "set", veth, "up")
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{NS_IP}/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"]):
            _run("ip", "netns", "exec", netns, *cmd)
        sshd_dir = tmp / "sshd"
        sshd_dir.mkdir(mode=0o700)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(sshd_dir / "host_key"))
        client_key = tmp / "id_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key))
        authorized = sshd_dir / "authorized_keys"
        authorized.write_text(client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        (sshd_dir / "sshd_config").write_text(
            f"ListenAddress {NS_IP}\nPort 22\nHostKey {sshd_dir}/host_key\n"
            f"PidFile {sshd_dir}/sshd.pid\nAuthorizedKeysFile {authorized}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\nLogLevel VERBOSE\n"
        )
        if not Path("/run/sshd").exists():
            Path("/run/sshd").mkdir(mode=0o755)
            made_privsep = True
        sshd = subprocess.Popen(
            ["ip", "netns", "exec", netns, SSHD, "-D", "-e", "-f", str(sshd_dir / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=open(sshd_dir / "sshd.log", "wb"),  # noqa: SIM115
        )
        _wait_port(NS_IP, 22, sshd)
        host_pub = (sshd_dir / "host_key.pub").read_text().split()
        known_hosts = tmp / "matrices" / "labs" / "known_hosts"
        known_hosts.parent.mkdir(parents=True)
        known_hosts.write_text(f"{NS_IP} {host_pub[0]} {host_pub[1]}\n")
        yield NsHost(tmp=tmp, client_key=client_key, known_hosts=known_hosts, netns=netns)
    finally:
        if sshd is not None:
            sshd.terminate()
            try:
                sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sshd.kill()
                sshd.wait()
        # sessions left by ansible's SSH multiplexing live on in the namespace
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        if made_privsep:
            shutil.rmtree("/run/sshd", ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_port(addr: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            with socket.create_connection((addr, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not listen on {addr}:{port}")


def _write_lab(h: NsHost) -> tuple[Path, Path, Path]:
    root = h.tmp / "root"
    lab = {
        "name": "ansible-test",
        "hosts": {
            "node-t": {
                "uri": f"qemu+ssh://root@{NS_IP}/system",
                "slots": 2,
                "attributes": {"cpu": "FT-2500", "numa_patch": True},
                "ssh": {"user": "root", "key": str(h.client_key)},
                "network": {"type": "bridge", "source": BRIDGE},
                "storage_dir": str(root / "images"),
            }
        },
        "guests": {
            "es10": {"boot": {"image": str(root / "images" / "base" / "es10.qcow2")},
                     "kernel_release": "4.18.0-147.5.1.el8_1.5es.10.aarch64", "os": "el8"}
        },
    }
    # a simulated host too: nothing to provision (left out of the inventory), but the
    # nightly run can boot on it here
    lab["hosts"]["sim-1"] = {"uri": "sim:///", "attributes": {"cpu": "FT-2500",
                                                             "numa_patch": False}}
    lab["sim"] = {"seed": 10, "rules": []}
    lab_file = h.tmp / "matrices" / "labs" / "test-lab.yaml"
    lab_file.write_text(yaml.safe_dump(lab))
    matrix = h.tmp / "matrices" / "nightly-test.yaml"
    matrix.write_text(yaml.safe_dump({
        "name": "nightly-test", "lab": "labs/test-lab.yaml",
        "axes": {"host": ["node-t"], "guest": ["es10"], "vcpus": [4, 8]}, "boots": 3,
    }))
    (h.tmp / "matrices" / "nightly-sim.yaml").write_text(yaml.safe_dump({
        "name": "nightly-sim", "lab": "labs/test-lab.yaml",
        "axes": {"host": ["sim-1"], "guest": ["es10"], "vcpus": [4]}, "boots": 2,
    }))
    inventory = h.tmp / "inventory" / "test.harness_lab.yml"
    inventory.parent.mkdir()
    ssh_args = f"-o UserKnownHostsFile={h.known_hosts} -o StrictHostKeyChecking=yes"
    inventory.write_text(yaml.safe_dump({
        "plugin": "harness_lab", "lab": str(lab_file), "controller": "ctl",
        "controller_vars": {"ansible_host": NS_IP, "ansible_user": "root",
                            "ansible_ssh_private_key_file": str(h.client_key),
                            "ansible_ssh_common_args": ssh_args},
    }))
    return lab_file, matrix, inventory


def _source_snapshot(dest: Path) -> Path:
    """The checkout as it is now (others may edit the work tree while the test runs)."""
    files = _run("git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard").stdout.split("\n")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def borrowed_venv(h: NsHost) -> Path:
    return h.tmp / "controller-venv"


def _borrowing_venv(venv: Path) -> None:
    """The namespace host has no network, so pip there cannot fetch the harness's
    dependencies. When this test runs from a virtualenv (CI's .venv), make the controller's
    virtualenv beforehand (the role keeps an existing one) and let it see this
    virtualenv's packages through a .pth file: the role then installs only the harness
    wheel, offline, as it does with --system-site-packages from a plain interpreter."""
    import sysconfig

    if (venv / "bin" / "python").exists():
        return
    _run(sys.executable, "-m", "venv", str(venv))
    purelib = _run(str(venv / "bin" / "python"), "-c",
                   "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(purelib, "harness-test-borrow.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


def _extra_vars(h: NsHost, matrix: Path) -> dict[str, object]:
    root = h.tmp / "root"
    if IN_VENV:  # outside root: the check-mode run must find nothing written there
        _borrowing_venv(borrowed_venv(h))
    return {
        # no sudo here and we log in as root: no privilege change
        "ansible_become": False,
        # the namespace host's own Python (as on a lab host), not this test's interpreter
        "ansible_python_interpreter": "/usr/bin/python3",
        # controller: everything under the temp folder, root as the controller user
        "controller_user": "root",
        "controller_group": "root",
        "controller_create_user": False,
        "controller_home": str(root / "srv"),
        "controller_packages": ["python3-venv", "openssh-client"],  # present: a real apt check
        "controller_python": sys.executable,
        # dependencies: borrowed from this interpreter, offline (the namespace host has no
        # network): --system-site-packages from a plain interpreter, a .pth file from a
        # virtualenv (_borrowing_venv)
        "controller_venv_site_packages": not IN_VENV,
        "controller_pip_extra_args": ["--no-index"],
        "controller_venv": str(borrowed_venv(h) if IN_VENV else root / "srv" / "venv"),
        "controller_source": str(_source_snapshot(h.tmp / "src")),
        "controller_wheel_dir": str(h.tmp / "dist"),
        "controller_matrix_files": [str(matrix), str(matrix.parent / "nightly-sim.yaml")],
        "controller_systemd_dir": str(root / "systemd"),
        "controller_retention_days": 5,
        "controller_retention_keep": 2,
        # kvm_host: packages that are here (no daemon package: systemd is not PID 1)
        "kvm_host_packages": ["qemu-system-arm", "qemu-efi-aarch64", "qemu-utils",
                              "libvirt-clients"],
        "kvm_host_manage_libvirt": False,
        "kvm_host_bridge_config_dir": str(root / "network"),
        "kvm_host_authorized_keys_file": str(h.tmp / "sshd" / "authorized_keys"),
        "kvm_host_facts_d": str(root / "facts.d"),
        "kvm_host_facts_controller_dir": str(h.tmp / "hostfacts"),
    }


def _playbook(inventory: Path, extra: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a playbook; its output and per-task times (junit) stay in the test's temp dir."""
    logs = extra.parent / "logs"
    n = len(list(logs.glob("run-*.log"))) if logs.exists() else 0
    env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
               PATH=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
               ANSIBLE_CALLBACKS_ENABLED="junit", JUNIT_OUTPUT_DIR=str(logs / f"junit-{n}"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(extra.parent / "ansible-local"),
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(extra.parent / "cp"),
               ANSIBLE_REMOTE_TEMP=str(extra.parent / "ansible-remote"))
    env.pop("HARNESS_LAB", None)
    res = subprocess.run(
        [str(BIN_DIR / "ansible-playbook"), "--diff", "-i", str(inventory),
         "-e", f"@{extra}", *args],
        cwd=ANSIBLE_DIR, env=env, text=True, capture_output=True, timeout=900,
    )
    logs.mkdir(exist_ok=True)
    (logs / f"run-{n}.log").write_text(res.stdout + res.stderr)
    return res


def _changed_tasks(out: str) -> list[str]:
    """'TASK name: host' for every task that reported a change."""
    found, task = [], ""
    for line in out.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed: ["):
            found.append(f"{task}: {line.split(']', 1)[0][10:]}")
    return found


def _recap(out: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", out, re.M):
        recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return recap


def test_site_provisions_the_namespace_host_twice_second_run_changes_nothing(
    ns_host: NsHost,
) -> None:
    h = ns_host
    lab_file, matrix, inventory = _write_lab(h)
    extra = h.tmp / "extra-vars.json"
    extra.write_text(json.dumps(_extra_vars(h, matrix)))

    # check mode on the fresh host: says what it would do, writes nothing there
    dry = _playbook(inventory, extra, "site.yml", "--check")
    assert dry.returncode == 0, dry.stdout[-6000:] + dry.stderr[-3000:]
    assert _recap(dry.stdout)["node-t"]["changed"] > 0
    assert not (h.tmp / "root").exists()

    first = _playbook(inventory, extra, "site.yml")
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    recap1 = _recap(first.stdout)
    assert set(recap1) >= {"ctl", "node-t"}, first.stdout[-2000:]
    assert recap1["ctl"]["changed"] > 0 and recap1["node-t"]["changed"] > 0
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap1.values())

    second = _playbook(inventory, extra, "site.yml")
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    recap2 = _recap(second.stdout)
    for name, res in (("check", dry), ("first", first), ("second", second)):
        print(f"site.yml {name} run:", res.stdout.split("PLAY RECAP")[-1].strip())
    changed = {host: r["changed"] for host, r in recap2.items()}
    assert changed == {host: 0 for host in recap2}, _changed_tasks(second.stdout)

    root = h.tmp / "root"
    srv = root / "srv"
    # the harness is installed in the controller's own virtualenv and loads the lab
    venv = borrowed_venv(h) if IN_VENV else srv / "venv"
    venv_sp = list((venv / "lib").glob("python3*/site-packages"))
    assert venv_sp and list(venv_sp[0].glob("vm_boot_harness-*.dist-info"))
    version = _run(str(venv / "bin" / "harness"), "--version").stdout
    assert "harness" in version
    plan = _run(str(venv / "bin" / "harness"), "plan",
                str(srv / "matrices" / "nightly-test.yaml"), cwd=srv).stdout
    assert "node-t/es10/vcpu8" in plan
    assert (srv / "matrices" / "labs" / "test-lab.yaml").read_text() == lab_file.read_text()
    assert (srv / "matrices" / "labs" / "known_hosts").exists()
    # the nightly units are written with the paths of this controller, not enabled here
    service = (root / "systemd" / "harness-nightly.service").read_text()
    assert f"ExecStart={srv}/bin/harness-nightly" in service and "User=root" in service
    timer = (root / "systemd" / "harness-nightly.timer").read_text()
    assert "OnCalendar=*-*-* 01:00:00" in timer and "Persistent=true" in timer
    assert "not run by systemd" in first.stdout

    # kvm_host: facts for the report, on the host and on the machine running ansible
    facts = json.loads((h.tmp / "hostfacts" / "node-t.json").read_text())
    assert facts["numa_patch"] is True and facts["numa_patch_source"] == "inventory"
    assert facts["kernel_release"] == os.uname().release
    assert facts["numa_nodes"] == len(list(Path("/sys/devices/system/node").glob("node[0-9]*")))
    assert facts["cpu_model"] and facts["lab"] == "ansible-test"
    assert json.loads((root / "facts.d" / "harness.fact").read_text()) == facts
    # the guest bridge exists inside the namespace, and its ifupdown stanza was written
    link = _run("ip", "netns", "exec", h.netns, "ip", "-o", "link", "show", "dev", BRIDGE).stdout
    assert "UP" in link
    assert f"auto {BRIDGE}" in (root / "network" / BRIDGE).read_text()
    assert (root / "images").is_dir()

    # the controller's new key (made by the controller role, authorized by kvm_host)
    # logs into the host
    ctl_key = srv / ".ssh" / "id_ed25519"
    login = _run("ssh", "-i", str(ctl_key), "-o", f"UserKnownHostsFile={h.known_hosts}",
                 "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", f"root@{NS_IP}", "echo", "in")
    assert login.stdout.strip() == "in"


def test_nightly_playbook_runs_reports_publishes_and_prunes(ns_host: NsHost) -> None:
    """nightly.yml on the provisioned controller: the installed harness-nightly runs the
    matrix (on the simulated host), writes and publishes the reports, points `latest` at
    them, and prunes runs older than the retention days beyond the newest `keep`; the
    results database stays."""
    h = ns_host
    _lab, matrix, inventory = _write_lab(h)
    extra = h.tmp / "extra-vars.json"
    extra.write_text(json.dumps({**_extra_vars(h, matrix),
                                 "controller_nightly_matrix": "nightly-sim.yaml"}))
    res = _playbook(inventory, extra, "site.yml")
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    srv = h.tmp / "root" / "srv"
    public = srv / "public"
    ages = {"nightly-a": 40, "nightly-b": 30, "nightly-c": 20, "nightly-d": 3, "nightly-e": 1}
    now = time.time()
    for name, days in ages.items():
        d = public / name
        d.mkdir()
        (d / "report.html").write_text(name)
        os.utime(d, (now - days * 86400, now - days * 86400))

    res = _playbook(inventory, extra, "nightly.yml")
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-3000:]
    latest = public / "latest"
    assert latest.is_symlink()
    run_id = os.readlink(latest)
    assert re.fullmatch(r"nightly-\d{8}-\d{6}", run_id), run_id
    assert "sim-1/es10/vcpu4" in (public / run_id / "report.html").read_text()
    assert (public / run_id / "summary.md").exists()
    # published as a link to the run folder: the artifacts are stored once
    assert (public / run_id).is_symlink()
    assert (public / run_id).resolve() == (srv / "reports" / run_id).resolve()
    # the night's digest (against its baseline) was written; nothing new: exit 0
    assert "nothing new" in (srv / "reports" / run_id / "digest.txt").read_text()
    assert list((srv / "reports").glob("*.db")), "the results database must stay"
    # copies left by older versions: keep=2 keeps e and d (the newest two); of the rest
    # none is younger than 5 days
    left = sorted(p.name for p in public.iterdir() if not p.is_symlink())
    assert left == sorted(["nightly-d", "nightly-e"]), res.stdout[-3000:]
    assert f"published {public / run_id}" in res.stdout
    assert "freed" in res.stdout  # harness prune ran on the results database
    # and the facts of the KVM host were refreshed on the way
    assert json.loads((h.tmp / "hostfacts" / "node-t.json").read_text())["numa_patch"] is True
