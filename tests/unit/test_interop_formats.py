"""The formats other tools read: junit.xml against the junit-10 XSD that Jenkins' xUnit
plugin validates with (a copy in tests/data/schemas), and the KCIDB document against the
KCIDB v5 schema of the ``kcidb-io`` package (the one ``kcidb-submit`` validates with)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import kcidb_io
import pytest
from lxml import etree

from harness.cli import main
from harness.report.junit import to_xml, write_junit
from harness.report.kcidb import to_kcidb
from harness.report.sample import record_sample_run, sample_view
from harness.store import Store

XSD = Path(__file__).parents[1] / "data" / "schemas" / "junit-10.xsd"


@pytest.fixture(scope="module")
def junit_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.fixture(scope="module")
def view():
    """Cells of every verdict (one made a pass: 20 boots cannot pass a 0% maximum)."""
    v = sample_view(hosts=2, guests=("es10", "es11"), vcpus=(4, 16), boots=20, seed=3)
    clean = next(c for c in v.cells if c.verdict == "undecided" and not c.vcpu_offline)
    cells = tuple(replace(c, verdict="pass") if c is clean else c for c in v.cells)
    return replace(v, cells=cells)


def _validate_kcidb(doc: dict) -> None:
    """Through JSON text, as kcidb-submit reads it; against v5.3, with format checks
    (uri, date-time) on, as kcidb-io does."""
    kcidb_io.schema.V5_3.validate(json.loads(json.dumps(doc)))


# --- JUnit ----------------------------------------------------------------------------------


def test_junit_validates_against_the_junit10_xsd(view, tmp_path: Path, junit_schema):
    path = write_junit(view, tmp_path / "junit.xml")
    doc = etree.parse(str(path))
    assert junit_schema.validate(doc), junit_schema.error_log
    counts = view.verdict_counts
    assert counts["fail"] and counts["undecided"] and counts["pass"]  # every branch taken


def test_the_xsd_rejects_what_junit_xml_used_to_hold(view, junit_schema):
    """The copy of the schema is not a rubber stamp: properties inside a testcase and
    `skipped` on testsuites (what junit.xml held before) fail it."""
    root = etree.fromstring(_xml_bytes(to_xml(view).getroot()))
    case = root.find(".//testcase")
    props = etree.SubElement(case, "properties")
    etree.SubElement(props, "property", name="boots", value="20")
    case.insert(0, props)
    assert not junit_schema.validate(etree.ElementTree(root))
    root2 = etree.fromstring(_xml_bytes(to_xml(view).getroot()))
    root2.set("skipped", "1")
    assert not junit_schema.validate(etree.ElementTree(root2))


def _xml_bytes(el) -> bytes:
    import xml.etree.ElementTree as ET

    return ET.tostring(el, encoding="utf-8")


def test_junit_numbers_are_in_system_out(view):
    root = to_xml(view).getroot()
    assert root.find(".//testcase/properties") is None
    assert root.get("skipped") is None
    assert root.find("testsuite").get("skipped") == str(view.verdict_counts["undecided"])
    for case, cell in zip(root.iter("testcase"), view.cells, strict=True):
        out = case.find("system-out").text
        numbers = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
        assert numbers["boots"] == str(cell.boots)
        assert numbers["vcpu_offline"] == str(cell.vcpu_offline)
        assert numbers["verdict"] == cell.verdict
        if cell.vcpu_offline_rate.value is not None:
            assert float(numbers["vcpu_offline_rate_high"]) == pytest.approx(
                cell.vcpu_offline_rate.high, abs=1e-6)
        assert numbers["host.numa_patch"] in ("true", "false")


# --- KCIDB ----------------------------------------------------------------------------------


def test_kcidb_document_validates_and_maps_outcomes(view):
    doc = to_kcidb(view, origin="ft2500_lab")
    _validate_kcidb(doc)
    assert doc["version"] == {"major": 5, "minor": 3}
    cells = {t["misc"]["cell"]: t for t in doc["tests"] if t["path"] == "vm_boot"}
    assert set(cells) == {c.id for c in view.cells}
    want = {"pass": "PASS", "fail": "FAIL", "undecided": "DONE", "not_judged": "DONE"}
    for c in view.cells:
        t = cells[c.id]
        assert t["status"] == want[c.verdict], c.id
        assert t["misc"]["vcpu_offline_rate"]["low"] == c.vcpu_offline_rate.low
        assert t["misc"]["vcpu_offline_rate"]["high"] == c.vcpu_offline_rate.high
        assert t["misc"]["confidence"] == view.confidence
        assert t["environment"]["misc"]["host"] == c.host
    boots = [t for t in doc["tests"] if t["path"] == "vm_boot.boot"]
    assert len(boots) == sum(len(c.boot_views) for c in view.cells)
    by_outcome: dict[str, set[str]] = {}
    for t in boots:
        by_outcome.setdefault(t["misc"]["outcome"], set()).add(t["status"])
    assert by_outcome["ok"] == {"PASS"}
    assert by_outcome["vcpu_offline"] == {"FAIL"}
    assert all(t["id"].startswith("ft2500_lab:") for t in doc["tests"])
    assert len({t["id"] for t in doc["tests"]}) == len(doc["tests"])


def test_kcidb_infra_errors_are_miss_and_an_unmeasured_cell_is_miss():
    view = sample_view(seed=7)  # seed 7 has infrastructure errors
    cell = next(c for c in view.cells if c.infra_error)
    dead = replace(cell, id="dead/cell", ok=0, vcpu_offline=0, boot_failure=0,
                   infra_error=3, verdict="undecided")
    view = replace(view, cells=(*view.cells, dead))
    doc = to_kcidb(view)
    _validate_kcidb(doc)
    statuses = {t["misc"]["outcome"]: t["status"] for t in doc["tests"]
                if t["path"] == "vm_boot.boot" and t["misc"]["outcome"] == "infra_error"}
    assert statuses == {"infra_error": "MISS"}
    top = next(t for t in doc["tests"] if t["path"] == "vm_boot"
               and t["misc"]["cell"] == "dead/cell")
    assert top["status"] == "MISS"


def test_kcidb_known_issues_become_issues_and_incidents(view):
    sig = next(s.title for c in view.cells for s in c.signatures)
    known = [{"id": "ft2500_cpu_online", "title": "FT-2500 secondary vCPU late",
              "signature": sig, "url": "https://bugs.example.org/66611", "state": "open"}]
    doc = to_kcidb(view, known_issues=known, base_url="https://lab.example.org/runs/x")
    _validate_kcidb(doc)
    assert [i["report_url"] for i in doc["issues"]] == ["https://bugs.example.org/66611"]
    showing = [t for t in doc["tests"]
               if t["path"] == "vm_boot.boot" and sig in t["misc"].get("signatures", ())]
    assert showing and len(doc["incidents"]) == len(showing)
    assert {i["test_id"] for i in doc["incidents"]} == {t["id"] for t in showing}
    assert all(t["log_url"].startswith("https://lab.example.org/runs/x/")
               for t in showing if "log_url" in t)


def test_kcidb_schema_check_is_real(view):
    """kcidb-io refuses what KCIDB would refuse (so the checks above mean something)."""
    doc = to_kcidb(view)
    doc["tests"][0]["status"] = "UNDECIDED"
    with pytest.raises(Exception, match="UNDECIDED"):
        _validate_kcidb(doc)
    with pytest.raises(Exception, match="origin"):
        to_kcidb(view, origin="Bad Origin")


def harness(capsys, *args: str) -> tuple[int, str]:
    """``harness ARGS`` in this process: exit status and everything printed."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_harness_report_format_kcidb(tmp_path: Path, capsys):
    db = tmp_path / "lab.db"
    run_dir = tmp_path / "r1"
    with Store(db) as store:
        record_sample_run(store, "r1", run_dir, hosts=2, guests=("es10", "es11"),
                          vcpus=(4,), boots=6)
    code, out = harness(capsys, "report", "r1", "--db", str(db), "--format", "kcidb,junit",
                        "--kcidb-origin", "nightly_lab")
    assert code == 0, out
    doc = json.loads((run_dir / "kcidb.json").read_text())
    _validate_kcidb(doc)
    assert doc["checkouts"][0]["id"] == "nightly_lab:r1"
    assert len([t for t in doc["tests"] if t["path"] == "vm_boot.boot"]) == 2 * 2 * 6
    code, out = harness(capsys, "report", "r1", "--db", str(db), "--format", "kcidb",
                        "--kcidb-origin", "Nightly-Lab")
    assert code == 2 and "a-z, 0-9" in out and "Traceback" not in out, out
