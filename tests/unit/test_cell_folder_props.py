"""Property: no two cells share an artifact folder (nor a domain name), whatever their
axis values; the folder stays readable and within the characters paths and libvirt take."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.bootloop import domain_name
from harness.model import Cell, cell_folder

VALUE = st.one_of(
    st.sampled_from(["a b", "a&b", "a_b", "a|b", "a/b", "a.b", "a-b", "..", ".", ""]),
    st.text(max_size=12),
    st.integers(-5, 5).map(str),
)


@settings(max_examples=300)
@given(st.lists(st.tuples(VALUE, VALUE), min_size=2, max_size=30, unique=True))
def test_no_two_cells_share_a_folder_or_a_domain(values: list[tuple[str, str]]) -> None:
    ids = {f"node-1/es11/vcpu4/label={a}/mode={b}" for a, b in values}  # as cell_id makes them
    cells = [Cell(id=i, matrix="m", host="node-1", guest="es11", vcpus=4, boots=1)
             for i in ids]
    folders = {c.folder for c in cells}
    assert len(folders) == len(cells)
    assert len({domain_name("r1", c, 0) for c in cells}) == len(cells)
    for f in folders:
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,80}-[0-9a-f]{8}", f), f


def test_punctuation_only_differences_used_to_collide() -> None:
    ids = [f"n/g/vcpu4/label={v}" for v in ("a b", "a&b", "a_b", "a|b")]
    assert len({Cell(id=i, matrix="m", host="n", guest="g", vcpus=4, boots=1).safe_id
                for i in ids}) == 1  # the readable part alone cannot tell them apart
    assert len({cell_folder(i) for i in ids}) == 4
    assert cell_folder("node-1/es11/vcpu16").startswith("node-1.es11.vcpu16-")
