"""Bisection of a flaky failure: the culprit posterior (``model``), the choice of boots
(``policy``), the checks of a result (``summary``), simulated campaigns (``simulate``) and
the campaign file and loop (``campaign``)."""
