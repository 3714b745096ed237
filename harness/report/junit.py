"""JUnit XML: one testcase per cell, so Jenkins (and GitLab, ...) show trends.

``classname`` is the matrix name, ``name`` the cell id. A cell that fails its expectation
is a ``<failure>`` whose message is the statistical statement; an undecided cell is
``<skipped>`` with the statement and the boots that could decide it (not enough evidence
either way: neither a red build nor a green claim). The per-cell numbers (counts, rates with
their intervals, axes, host attributes, verdict) are ``name = value`` lines in the case's
``<system-out>``: the junit-10 schema Jenkins validates against has no ``<properties>`` in
a ``<testcase>`` (and Jenkins' JUnit plugin ignores them by default), and no ``skipped`` on
``<testsuites>``. tests/data/schemas/junit-10.xsd is that schema; the tests validate
against it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report.view import CellView, RunView, rate_text, show_value
from harness.xmltext import sanitize_tree


def _props(cell: CellView) -> list[tuple[str, str]]:
    out = [("boots", cell.boots), ("ok", cell.ok), ("vcpu_offline", cell.vcpu_offline),
           ("boot_failure", cell.boot_failure), ("infra_error", cell.infra_error)]
    props = [(k, str(v)) for k, v in out]
    for name in ("vcpu_offline", "boot_failure"):
        r = cell.rate(name)
        if r.value is not None:
            props += [(f"{name}_rate", f"{r.value:.6f}"), (f"{name}_rate_low", f"{r.low:.6f}"),
                      (f"{name}_rate_high", f"{r.high:.6f}")]
    props += [("host", cell.host), ("guest", cell.guest), ("vcpus", str(cell.vcpus))]
    props += [(str(k), show_value(v)) for k, v in cell.params]
    props += [(f"host.{k}", show_value(v)) for k, v in cell.host_attrs]
    props += [(f"version.{k}", v) for k, v in cell.versions]
    props.append(("verdict", cell.verdict))
    props.append(("interval", cell.interval))
    if cell.stopped_early is not None:
        se = cell.stopped_early
        props += [("stopped_early", "true"), ("stopped_at_boot", str(se.at_boot)),
                  ("stopped_decision", se.decision)]
    return props


def numbers_text(cell: CellView) -> str:
    """The cell's numbers as ``name = value`` lines (what ``<properties>`` used to hold)."""
    return "\n".join(f"{k} = {v}" for k, v in _props(cell))


def _body(cell: CellView) -> str:
    lines = [j.statement + f" -> {j.verdict}" for j in cell.judgements]
    if cell.infra_error:
        lines.append(f"{cell.infra_error} infrastructure error(s), not counted in the rates")
    lines += [f"{s.count} x {s.title}" for s in cell.signatures]
    return "\n".join(lines)


def to_xml(view: RunView) -> ET.ElementTree:
    counts = view.verdict_counts
    # an incomplete run's unfinished cells that do not already fail could not be measured:
    # errors, never a quiet pass or skip
    errors = {cid: why for cid, why in view.unmeasured.items()
              if next((c.verdict for c in view.cells if c.id == cid), "") != "fail"}
    skipped = sum(1 for c in view.cells if c.verdict == "undecided" and c.id not in errors)
    suites = ET.Element("testsuites", name=view.matrix, tests=str(len(view.cells)),
                        failures=str(counts["fail"]), errors=str(len(errors)))
    suite = ET.SubElement(
        suites, "testsuite", name=view.matrix, tests=str(len(view.cells)),
        failures=str(counts["fail"]), skipped=str(skipped), errors=str(len(errors)),
        timestamp=view.started, id=view.id,
    )
    sp = ET.SubElement(suite, "properties")
    ET.SubElement(sp, "property", name="run_id", value=view.id)
    if view.baseline_reason:
        base = view.regressions.baseline_id if view.regressions else None
        ET.SubElement(sp, "property", name="baseline", value=base or "")
        ET.SubElement(sp, "property", name="baseline_why", value=view.baseline_reason)
    if view.regressions is not None:
        ET.SubElement(sp, "property", name="new_regressions",
                      value=" ".join(c.cell_id for c in view.regressions.new_regressions))
    st = view.completeness
    if st is not None:
        ET.SubElement(sp, "property", name="complete", value="true" if st.complete else "false")
        if not st.complete:
            ET.SubElement(sp, "property", name="incomplete_why", value="; ".join(st.reasons))
        for h, why in st.hosts_set_aside:
            ET.SubElement(sp, "property", name=f"host_set_aside.{h}", value=why)
        for h, n in st.infra_by_host:
            ET.SubElement(sp, "property", name=f"infra_errors.{h}", value=str(n))
    for k, v in view.versions:
        ET.SubElement(sp, "property", name=f"version.{k}", value=str(v))
    for cell in view.cells:
        case = ET.SubElement(suite, "testcase", classname=view.matrix, name=cell.id)
        if cell.id in errors:
            err = ET.SubElement(case, "error", message=errors[cell.id], type="incomplete")
            err.text = _body(cell)
        elif cell.verdict == "fail":
            msg = "; ".join(cell.failed_statements) or "fails its expectation"
            fail = ET.SubElement(case, "failure", message=msg, type="expectation")
            fail.text = _body(cell)
        elif cell.verdict == "undecided":
            parts = []
            for j in cell.judgements:
                if j.verdict == "undecided":
                    more = (f" ({j.boots_to_decide} more boots could decide it)"
                            if j.boots_to_decide else "")
                    parts.append(f"undecided: {j.statement}{more}")
            ET.SubElement(case, "skipped",
                          message="; ".join(parts) or "undecided: no guest boots")
        out = ET.SubElement(case, "system-out")
        statements = _body(cell) or ("vCPU offline " + rate_text(cell.vcpu_offline_rate))
        out.text = f"{statements}\n\n{numbers_text(cell)}\n"
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(view: RunView, path: Path) -> Path:
    tree = to_xml(view)
    root = tree.getroot()
    if root is not None:
        sanitize_tree(root)  # what a guest printed stays well-formed XML
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
