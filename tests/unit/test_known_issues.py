"""known-issues.yaml: loading with located errors, matching by signature, cell and host,
and every report marking known signatures with their bug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.knownissues import find_known_issues, load_known_issues
from harness.report import write_reports
from harness.report.sample import record_sample_run
from harness.store import Store

SIG = "CPU#: failed to come online"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "known-issues.yaml"
    p.write_text(text)
    return p


def test_matching_by_signature_cell_host_and_state(tmp_path: Path):
    k = load_known_issues(_write(tmp_path, f"""
issues:
  - id: late-vcpu
    signature: "{SIG}"
    bug: https://bugs.example.org/EAS-66611
    cells: ["node-1/*"]
  - signature: {{regex: "^psci: failed to boot CPU"}}
    bug: EAS-70000
    hosts: [node-3]
  - signature: "Kernel panic - not syncing"
    bug: https://bugs.example.org/EAS-1
    state: fixed
"""))
    assert k.issues[0].id == "late-vcpu" and len(k.issues) == 3
    assert k.known(SIG, "node-1/es11/vcpu4", "node-1")
    assert not k.known(SIG, "node-3/es11/vcpu4", "node-3")  # another cell: news
    assert k.known("psci: failed to boot CPU3 (-22)", "node-3/es11/vcpu4", "node-3")
    assert not k.known("psci: failed to boot CPU3 (-22)", "node-1/es11/vcpu4", "node-1")
    # a fixed issue never silences; its signature seen again reopens it
    assert not k.known("Kernel panic - not syncing", "node-1/es11/vcpu4", "node-1")
    assert k.reopened("Kernel panic - not syncing", "node-1/es11/vcpu4", "node-1")


@pytest.mark.parametrize("text, where, what", [
    ("issues:\n  - signature: x\n    bug: https://b/1\n    stat: open\n", ":4:5",
     "unknown key 'stat'"),
    ("issues:\n  - signature: x\n    bug: https://b/1\n    state: closed\n", ":4:12",
     "state"),
    ("issues:\n  - signature: {regex: '(('}\n    bug: https://b/1\n", ":2:", "regular expr"),
    ("issues:\n  - signature: x\n    bug: nope\n", ":3:10", "neither a link"),
    ("issues:\n  - bug: https://b/1\n", ":2:", "missing required key 'signature'"),
    ("issues:\n  - {id: a, signature: x, bug: EAS-1}\n  - {id: a, signature: y, bug: EAS-2}\n",
     ":3:", "used twice"),
    ("- just a list\n", ":1:1", "mapping"),
])
def test_bad_entries_are_located_errors(tmp_path: Path, text: str, where: str, what: str):
    with pytest.raises(ConfigError) as e:
        load_known_issues(_write(tmp_path, text))
    msg = str(e.value)
    assert "known-issues.yaml" + where in msg and what in msg, msg


def test_found_beside_the_matrix_or_given(tmp_path: Path):
    matrix = tmp_path / "m.yaml"
    assert not find_known_issues(None, [matrix])
    _write(tmp_path, f'issues: [{{signature: "{SIG}", bug: EAS-1}}]\n')
    assert find_known_issues(None, [matrix]).issues[0].bug == "EAS-1"
    with pytest.raises(ConfigError, match="no known-issues file"):
        find_known_issues(tmp_path / "missing.yaml", [matrix])


def test_reports_mark_known_signatures(tmp_path: Path):
    known = load_known_issues(_write(tmp_path, f"""
issues:
  - {{signature: "{SIG}", bug: "https://bugs.example.org/EAS-66611", cells: ["node-1/*"]}}
"""))
    with Store(tmp_path / "lab.db") as store:
        record_sample_run(store, "r1", tmp_path / "r1", hosts=3, guests=("es11",),
                          vcpus=(8,), boots=20)
        paths = write_reports(store, "r1", ("md", "json", "html", "kcidb"), tmp_path / "out",
                              previous=False, known=known)
    doc = json.loads(paths["json"].read_text())
    marks = {c["id"]: [s["known"] for s in c["signatures"] if s["title"] == SIG]
             for c in doc["cells"]}
    assert marks["node-1/es11/vcpu8"] == [["https://bugs.example.org/EAS-66611"]]
    assert marks["node-3/es11/vcpu8"] == [[]]  # the issue names node-1's cells only
    md = paths["md"].read_text()
    assert f"{SIG} (known: https://bugs.example.org/EAS-66611)" in md.replace("\\", "")
    html = paths["html"].read_text()
    assert '<a href="https://bugs.example.org/EAS-66611">' in html
    kc = json.loads(paths["kcidb"].read_text())
    assert [i["report_url"] for i in kc["issues"]] == ["https://bugs.example.org/EAS-66611"]
    assert kc["incidents"]
