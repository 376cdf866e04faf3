"""The controller's two sides cannot drift: every method ``ControllerService`` serves has a
``ControllerClient`` method taking the same parameters (names, types, defaults, keyword-only there)
and answering the same type, and the client names no method the service does not serve."""

from __future__ import annotations

from conference_controller.service import ControllerService
from contracts.controller import ControllerClient
from tests.support.contract_check import client_mismatches


def test_every_served_method_has_a_client_method_of_the_same_shape() -> None:
    assert client_mismatches(ControllerService, ControllerClient) == []
