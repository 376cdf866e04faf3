"""The alert service's intake and its client cannot drift: ``fault`` and ``dead_letter`` are cast by
``AlertsClient`` with the parameters ``AlertService`` serves."""

from __future__ import annotations

from alerts.service import AlertService
from contracts.alerts import AlertsClient
from tests.support.contract_check import client_mismatches


def test_the_intake_methods_have_cast_methods_of_the_same_shape() -> None:
    assert client_mismatches(AlertService, AlertsClient, methods={"fault", "dead_letter"}) == []
