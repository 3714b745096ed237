"""Property tests of the pure expansion: count = product - excluded + included; ids
unique and stable."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.matrix.expand import Axis, MatrixSpec, cell_id, expand, matches

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=6)


@st.composite
def specs(draw: st.DrawFn) -> tuple[MatrixSpec, int, int]:
    hosts = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    guests = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    vcpus = draw(st.lists(st.integers(1, 64), min_size=1, max_size=3, unique=True))
    extra = draw(st.lists(st.sampled_from(["warm", "cold", "reset"]), max_size=2, unique=True))
    axes = [Axis("host", tuple(hosts)), Axis("guest", tuple(guests)), Axis("vcpus", tuple(vcpus))]
    if extra:
        axes.append(Axis("reboot", tuple(extra)))
    attrs = {h: (("numa_patch", draw(st.booleans())),) for h in hosts}
    excludes = draw(st.lists(st.one_of(
        st.tuples(st.just("vcpus"), st.lists(st.sampled_from(vcpus), min_size=1)),
        st.tuples(st.just("guest"), st.lists(st.sampled_from(guests), min_size=1)),
        st.tuples(st.just("numa_patch"), st.lists(st.booleans(), min_size=1)),
    ), max_size=2))
    exclude = tuple(((k, tuple(v)),) for k, v in excludes)
    spec0 = MatrixSpec(name="m", axes=tuple(axes), exclude=exclude,
                       host_attrs=tuple(attrs.items()))
    product = [dict(zip([a.name for a in axes], c, strict=True))
               for c in itertools.product(*(a.values for a in axes))]
    excluded = [p for p in product
                if any(matches(p, dict(attrs[p["host"]]), ex) for ex in exclude)]
    # include some excluded points back and some new vcpu counts
    new_vcpus = [v for v in range(65, 70)][: draw(st.integers(0, 3))]
    includes = [dict(excluded[i]) for i in range(min(len(excluded), draw(st.integers(0, 2))))]
    for v in new_vcpus:
        p = dict(product[0])
        p["vcpus"] = v
        includes.append(p)
    spec = MatrixSpec(name="m", axes=spec0.axes, exclude=exclude, host_attrs=spec0.host_attrs,
                      include=tuple(tuple(p.items()) for p in includes))
    n_product = math.prod(len(a.values) for a in axes)
    return spec, n_product - len(excluded), len(includes)


@settings(max_examples=200, deadline=None)
@given(specs())
def test_count_is_product_minus_excluded_plus_included(case: tuple[MatrixSpec, int, int]
                                                       ) -> None:
    spec, kept, included = case
    cells = expand(spec)
    assert len(cells) == kept + included


@settings(max_examples=200, deadline=None)
@given(specs())
def test_ids_unique_and_stable(case: tuple[MatrixSpec, int, int]) -> None:
    spec, _, _ = case
    first = [c.id for c in expand(spec)]
    assert len(set(first)) == len(first)
    assert first == [c.id for c in expand(spec)]
    for c in expand(spec):
        point = {"host": c.host, "guest": c.guest, "vcpus": c.vcpus, "reboot": str(c.reboot)}
        assert c.id == cell_id(point, spec.axes)
        assert set(c.safe_id) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789_.-")
