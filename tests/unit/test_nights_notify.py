"""Simulated nights end to end (time scale 0), as a nightly team lives them: a real SMTP
server (aiosmtpd) and a real HTTP server (http.server) on 127.0.0.1 receive what
`harness digest --notify` sends.

Nights 1-2: host-a/es11 fails (still failing, never news). Night 3: host-b/es11 starts
failing (the sim rules change): one "new regression" digest. Night 4: same rates: nothing
sent. The team marks night 3's signatures known: night 3 judged again is silent. Night 5:
host-b/es11 is clean again: one recovery. Night 6: nothing. Then `harness prune` keeps
failing evidence, removes passing evidence past the limit, and reports read whole."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from harness.cli import main
from harness.retention import disk_usage
from harness.store import Store

pytestmark = pytest.mark.slow

FAILING_A = {"match": {"host": "host-a", "guest": "es11"}, "vcpu_offline": 0.6,
             "offline_cpus": [1, 1]}
REGRESSION_B = {"match": {"host": "host-b", "guest": "es11"}, "vcpu_offline": 0.35,
                "boot_failure": 0.1, "offline_cpus": [2, 3]}
BOOTS = 40


class _Smtp:
    """aiosmtpd handler: keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server():
    import socket

    with socket.socket() as s:  # a free port (aiosmtpd checks readiness on the given one)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = _Smtp()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield handler, port
    finally:
        ctl.stop()


@pytest.fixture
def http_server():
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = int(self.headers["Content-Length"])
            got.append({"path": self.path, "type": self.headers["Content-Type"],
                        "body": json.loads(self.rfile.read(n))})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield got, srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def harness(capsys, *args: str) -> tuple[int, str, str]:
    try:
        rv = main(list(args))
        code = int(rv or 0)
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _lab(folder: Path, rules: list[dict[str, Any]]) -> None:
    (folder / "labs").mkdir(exist_ok=True)
    (folder / "labs" / "nights-lab.yaml").write_text(yaml.safe_dump({
        "name": "nights-lab",
        "hosts": {h: {"uri": "sim:///", "slots": 2, "attributes": {"cpu": "FT-2500"}}
                  for h in ("host-a", "host-b")},
        "guests": {g: {"kernel_release": f"4.18.0-147.5.1.el8_1.5{g}.aarch64", "os": "el8"}
                   for g in ("es10", "es11")},
        "sim": {"seed": 19, "rules": rules, "infra_error": 0.0},
    }))


def test_one_message_when_something_new_breaks_and_none_when_nothing_new_did(
        tmp_path: Path, capsys, smtp_server, http_server):
    smtp, smtp_port = smtp_server
    hooks, http_port = http_server
    mdir = tmp_path / "matrices"
    mdir.mkdir()
    matrix = mdir / "nights.yaml"
    matrix.write_text(yaml.safe_dump({
        "name": "nights", "lab": "labs/nights-lab.yaml",
        "axes": {"host": ["host-a", "host-b"], "guest": ["es10", "es11"], "vcpus": [4]},
        "boots": BOOTS, "expect": {"vcpu_offline": 0.0, "boot_failure": 0.0}}))
    notify = tmp_path / "notify.yaml"
    notify.write_text(yaml.safe_dump({
        "base_url": "https://lab.example.org/harness",
        "email": {"to": ["kernel-team@example.org"], "from": "harness@lab.example.org",
                  "smtp": {"host": "127.0.0.1", "port": smtp_port}},
        "webhook": {"url": f"http://127.0.0.1:{http_port}/hook"}}))
    reports = tmp_path / "reports"
    rules_by_night = {1: [FAILING_A], 2: [FAILING_A], 3: [FAILING_A, REGRESSION_B],
                      4: [FAILING_A, REGRESSION_B], 5: [FAILING_A], 6: [FAILING_A]}
    sent_after: dict[int, tuple[int, int]] = {}
    exits: dict[int, int] = {}
    digests: dict[int, dict[str, Any]] = {}
    for night, rules in rules_by_night.items():
        _lab(mdir, rules)
        code, out, err = harness(capsys, "run", str(matrix), "--run-id", f"night-{night}",
                                 "--reports-dir", str(reports), "-q", "--no-report",
                                 "--order-seed", str(night))
        assert code in (0, 1), out + err
        code, out, err = harness(capsys, "digest", f"night-{night}", "--db",
                                 str(reports / "nights-lab.db"), "--notify", str(notify),
                                 "--json")
        exits[night] = code
        digests[night] = json.loads(out)
        sent_after[night] = (len(smtp.messages), len(hooks))

    # night 1 has no baseline, night 2 nothing new: no message, exit 0 (host-a still fails)
    assert digests[1]["baseline"] is None and exits[1] == 0
    assert digests[2]["baseline"] == "night-1" and exits[2] == 0
    assert digests[2]["still_failing"] == 1 and not digests[2]["new_regressions"]
    assert sent_after[2] == (0, 0)
    # night 3: one digest per channel, naming the new regression
    assert exits[3] == 1
    assert [r["cell"] for r in digests[3]["new_regressions"]] == ["host-b/es11/vcpu4"]
    assert sent_after[3] == (1, 1)
    mail = smtp.messages[0]
    assert mail["Subject"].startswith("[nights] 1 new regression")
    assert mail["To"] == "kernel-team@example.org"
    body = mail.get_body(("plain",)).get_content()
    assert "NEW REGRESSIONS (1):" in body and "host-b/es11/vcpu4" in body
    assert "https://lab.example.org/harness/night-3/report.html" in body
    assert "Still failing: 1 cells" in body
    hook = hooks[0]
    assert hook["path"] == "/hook" and hook["type"] == "application/json"
    assert hook["body"]["run"] == "night-3" and hook["body"]["alarm"] is True
    # night 4: the same failure again is not news: nothing sent, exit 0
    assert digests[4]["baseline"] == "night-3"
    assert exits[4] == 0 and sent_after[4] == (1, 1)
    assert digests[4]["still_failing"] == 2
    # --fail-on-any-failing: for teams that want every failing night red
    code, _out, _err = harness(capsys, "digest", "night-4", "--db",
                               str(reports / "nights-lab.db"), "--fail-on-any-failing")
    assert code == 1
    # night 5: the recovery, announced once; night 6: nothing
    assert [r["cell"] for r in digests[5]["recoveries"]] == ["host-b/es11/vcpu4"]
    assert exits[5] == 0 and sent_after[5] == (2, 2)
    assert smtp.messages[1]["Subject"].startswith("[nights] 1 recovery")
    assert exits[6] == 0 and sent_after[6] == (2, 2)

    # the team marks night 3's signatures known (a file beside the matrix): judged again,
    # night 3 is a known regression, no alarm, nothing sent
    titles = sorted(set(digests[3]["new_regressions"][0]["signatures"]))
    assert titles
    (mdir / "known-issues.yaml").write_text(yaml.safe_dump({"issues": [
        {"signature": t, "bug": "https://bugs.example.org/EAS-66611", "cells": ["host-b/*"]}
        for t in titles]}))
    code, out, _err = harness(capsys, "digest", "night-3", "--db",
                              str(reports / "nights-lab.db"), "--notify", str(notify), "--json")
    again = json.loads(out)
    assert code == 0 and not again["alarm"], again
    assert [r["cell"] for r in again["known_regressions"]] == ["host-b/es11/vcpu4"]
    assert again["known_regressions"][0]["known"][0]["bug"].endswith("EAS-66611")
    assert (len(smtp.messages), len(hooks)) == (2, 2)

    # a mistake in the known-issues file: located, exit 2, no traceback
    (mdir / "known-issues.yaml").write_text("issues:\n  - signature: x\n    bug: not a link\n")
    code, out, err = harness(capsys, "digest", "night-3", "--db", str(reports / "nights-lab.db"))
    assert code == 2 and "known-issues.yaml:3:" in err and "Traceback" not in err, err

    # retention over these nights: failing evidence kept longer than passing
    db = reports / "nights-lab.db"
    sizes = {n: disk_usage(reports / f"night-{n}") for n in rules_by_night}
    code, out, _err = harness(capsys, "prune", "--db", str(db), "--keep-nights", "2",
                              "--keep-failing", "4")
    assert code == 0, out
    with Store(db) as store:
        for n in rules_by_night:
            boots = store.boots(f"night-{n}", with_findings=False)
            ok_files = [b for b in boots if b.outcome == "ok" and b.artifacts]
            bad_files = [b for b in boots if b.outcome != "ok" and b.artifacts]
            if n >= 5:  # the newest two keep everything
                assert ok_files and bad_files
            elif n >= 3:  # the next two keep the failing boots' evidence only
                assert not ok_files and bad_files
                assert all((reports / f"night-{n}" / rel).exists()
                           for b in bad_files for _k, rel in b.artifacts)
            else:
                assert not ok_files and not bad_files
            if n < 5:
                assert disk_usage(reports / f"night-{n}") < sizes[n]
    # history and reports still whole: the digest of night 3 reads the same, reports write
    code, out, _err = harness(capsys, "digest", "night-3", "--db", str(db), "--no-write",
                              "--known-issues", str(tmp_path / "none.yaml"))
    assert code == 2  # a known-issues file given but missing is an error
    (mdir / "known-issues.yaml").unlink()
    code, out, _err = harness(capsys, "digest", "night-3", "--db", str(db), "--json",
                              "--no-write")
    assert code == 1 and json.loads(out)["new_regressions"] == digests[3]["new_regressions"]
    code, out, _err = harness(capsys, "report", "night-1", "--db", str(db),
                              "--format", "md,json,junit,kcidb", "--out", str(tmp_path / "r1"))
    assert code == 0, out
    r1 = json.loads((tmp_path / "r1" / "report.json").read_text())
    assert sum(c["boots"] for c in r1["cells"]) == 4 * BOOTS
