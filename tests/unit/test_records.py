"""One definition of each shared record, built by keyword; one rule for matching a host
attribute or axis value, the same for matrices, bisect campaigns and sim rules."""

from __future__ import annotations

import importlib

import pytest

from harness import model
from harness.sim import model as sim_model

# the packages export functions of these names: the modules themselves
campaign = importlib.import_module("harness.bisect.campaign")
expand = importlib.import_module("harness.matrix.expand")


def test_one_definition_each() -> None:
    from harness.classify import result
    from harness.report import view
    from harness.stats import rates

    assert result.SignatureCount is view.SignatureCount is model.SignatureCount
    assert view.Rate is rates.Rate
    for cls, kw in ((model.SignatureCount, {"kind": "k", "title": "t", "count": 1}),
                    (rates.Rate, {"k": 1, "n": 2, "value": 0.5, "low": 0.1, "high": 0.9}),
                    (model.Expectation, {"vcpu_offline": 0.1}),
                    (model.Timeouts, {"boot": 1.0})):
        cls(**kw)
        with pytest.raises(TypeError):
            cls(*kw.values())  # keyword-built only: no field order to get wrong


@pytest.mark.parametrize("a, b, same", [
    (3, "3", True), ("3", 3, True), (3, 3, True), ("a", "a", True),
    (True, True, True), (True, 1, False), (1, True, False), (True, "true", False),
    (False, 0, False), (3, 4, False), ("3", "03", False)])
def test_attribute_matching_is_one_rule(a: object, b: object, same: bool) -> None:
    assert model.same_value(a, b) is same
    # matrices, bisect campaigns and sim rules all use it (no copy of their own)
    assert expand.same_value is campaign.same_value is sim_model.same_value \
        is model.same_value
    assert expand.matches({}, {"rack": a}, (("rack", (b,)),)) is same
