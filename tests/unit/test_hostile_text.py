"""Hostile text: what a guest prints reaches JUnit and HTML as well-formed XML (control
characters made visible, never raw); domxml's separators cannot be forged by a cell id;
property tests that mutate valid lab and matrix files and names: every outcome is a
loaded matrix or a located ConfigError, never another exception."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli.domxml import cell_comment
from harness.errors import ConfigError, ConfigErrors
from harness.inventory import NAME_MAX, name_problem
from harness.matrix import load_matrix
from harness.report.html import render_html
from harness.report.junit import write_junit
from harness.report.sample import sample_view
from harness.report.view import SignatureCount
from harness.xmltext import xml_safe

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad-inputs"
HOSTILE = "CPU3: a\x00b\x01c\x1b[31mred\x1b[0m \x7f \ud800 \ufffe ]]> <!-- --> & <x/>"
RAW_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _hostile_view():  # type: ignore[no-untyped-def]
    view = sample_view(hosts=1, guests=("es11",), vcpus=(4,), boots=10, seed=3)
    cells = tuple(replace(c, signatures=(SignatureCount(title=HOSTILE, count=3, kind="oops"),))
                  for c in view.cells)
    return replace(view, cells=cells)


def test_xml_safe_makes_every_bad_character_visible() -> None:
    out = xml_safe(HOSTILE)
    assert RAW_BAD.search(out) is None
    assert "\\x00" in out and "\\x01" in out and "\\x1b[31m" in out and "\\ud800" in out
    assert xml_safe("plain text\tand\nlines") == "plain text\tand\nlines"


def test_junit_of_a_guest_that_printed_control_characters_is_well_formed(
        tmp_path: Path) -> None:
    path = write_junit(_hostile_view(), tmp_path / "junit.xml")
    raw = path.read_text(encoding="utf-8")
    assert RAW_BAD.search(raw) is None
    root = ET.fromstring(raw.encode())  # parses: well-formed
    text = "".join(root.itertext())
    assert "\\x1b[31mred" in text and "<!-- -->" in text  # kept, visible, escaped


def test_html_of_a_guest_that_printed_control_characters_has_none_raw() -> None:
    html = render_html(_hostile_view())
    assert RAW_BAD.search(html) is None
    assert "\\x1b[31mred" in html
    assert "<!-- -->" not in html and "&lt;!-- --&gt;" in html  # autoescape still applies


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"),
               max_size=60))
def test_a_cell_id_cannot_forge_a_domxml_separator(cell_id: str) -> None:
    line = cell_comment(cell_id)
    assert line.startswith("<!-- cell: ") and line.endswith(" -->")
    body = line[len("<!-- cell: "):-len(" -->")]
    assert "--" not in body  # the comment cannot end early (nor be ill-formed XML)
    assert unquote(body) == cell_id  # and gives the id back


def test_timestamps_that_go_back_give_no_latency_and_say_so() -> None:
    from harness.classify import classify
    from harness.classify.render import bringup_latency, summary, to_dict

    text = "\n".join([
        "[    0.500000] smp: Bringing up secondary CPUs ...",
        "[    0.600000] CPU1: Booted secondary processor 0x0000000001 [0x410fd083]",
        "[    0.100000] CPU2: Booted secondary processor 0x0000000002 [0x410fd083]",
        "[    0.700000] CPU3: Booted secondary processor 0x0000000003 [0x410fd083]",
        "[    0.800000] smp: Brought up 1 node, 4 CPUs"])
    c = classify(text, expected_cpus=4)
    b = c.boots[-1]
    assert b.timestamps_backwards and b.bringup_end_s is None and bringup_latency(b) is None
    assert b.slowest_cpu is None and c.verdict == "ok"
    assert to_dict(c, "x")["boots"][0]["bringup_latency_s"] is None
    assert "timestamps went back" in summary(c, "x")
    forward = classify(text.replace("[    0.100000] CPU2", "[    0.650000] CPU2"))
    assert bringup_latency(forward.boots[-1]) == 0.2  # and a sane log still has one


# --- property tests over files ------------------------------------------------------------

LAB = (CORPUS / "matrix" / "_lab.yaml").read_text()
MATRIX = """\
name: props
lab: _lab.yaml
axes:
  host: [node-1, node-2]
  guest: [g1, g2]
  vcpus: [2, 4]
  label: [a, b]
boots: 3
timeouts: {boot: 60}
expect: {vcpu_offline: 0.1}
exclude: [{guest: g2, vcpus: 4}]
overrides:
  - match: {host: node-2}
    boots: 4
"""
NASTY = ["\x00", "\x01", "\x1b", "\t", "\n", " ", ":", "-", "[", "]", "{", "}", "&", "*",
         "!", "|", ">", "'", '"', "#", "%", "@", "`", "<<", "~", "\\", "é", "\u202e", "9",
         "true", "1.5", ".nan", "!!binary", "&a", "*a", "<<: *a", "? ", "---", "...",
         "\ud800", "\ufeff"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` with a few edits: characters or tokens deleted, inserted or replaced,
    lines duplicated or swapped."""
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        op = draw(st.sampled_from(["insert", "delete", "replace", "dup", "swap"]))
        pos = draw(st.integers(0, max(0, len(text) - 1)))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(NASTY)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 6)):]
        elif op == "replace":
            text = text[:pos] + draw(st.sampled_from(NASTY)) + text[pos + 1:]
        elif op == "dup":
            i = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[:i + 1] + lines[i:])
        else:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def _load_or_located(folder: Path) -> None:
    try:
        m = load_matrix(folder / "m.yaml")
    except ConfigErrors as exc:
        assert exc.errors and all(e.where is not None for e in exc.errors), str(exc)
        for e in exc.errors:
            assert e.where is not None and e.where.line >= 1 and e.where.column >= 1
        return
    except ConfigError as exc:
        assert exc.where is not None, f"unlocated: {exc}"
        assert exc.where.line >= 1 and exc.where.column >= 1
        return
    # accepted: then it is a matrix the rest of the harness can take
    assert m.cells and all(isinstance(c.boots, int) and not isinstance(c.boots, bool)
                           and c.boots >= 1 for c in m.cells)
    for c in m.cells:
        assert name_problem(c.host) is None and name_problem(c.guest) is None
        assert RAW_BAD.search(c.id) is None and "\n" not in c.id


PROPS = settings(max_examples=100, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@PROPS
@given(text=mutated(MATRIX))
def test_a_mutated_matrix_loads_or_is_refused_with_a_location(
        text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("m")
    (folder / "_lab.yaml").write_text(LAB)
    (folder / "m.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    _load_or_located(folder)


@PROPS
@given(text=mutated(LAB))
def test_a_mutated_lab_loads_or_is_refused_with_a_location(
        text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("l")
    (folder / "_lab.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    (folder / "m.yaml").write_text("name: props\nlab: _lab.yaml\n"
                                   "axes: {host: all, guest: all, vcpus: [2]}\n")
    _load_or_located(folder)


@PROPS
@given(name=st.text(max_size=80))
def test_any_host_name_is_accepted_only_when_it_is_a_clean_name(
        name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    import json

    folder = tmp_path_factory.mktemp("n")
    (folder / "_lab.yaml").write_text(LAB.replace("node-2:", json.dumps(name) + ":"),
                                      encoding="utf-8", errors="surrogatepass")
    (folder / "m.yaml").write_text("name: props\nlab: _lab.yaml\n"
                                   "axes: {host: all, guest: all, vcpus: [2]}\n")
    try:
        m = load_matrix(folder / "m.yaml")
    except ConfigError as exc:
        assert exc.where is not None or isinstance(exc, ConfigErrors), str(exc)
        return
    assert name in m.lab.hosts or name == "node-1"
    assert len(name) <= NAME_MAX and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name)
