"""The portal's two sides cannot drift: every method ``PortalService`` serves has a ``PortalClient``
method taking the same parameters (names, types, defaults, keyword-only there) and answering the same
type, and the client names no method the service does not serve."""

from __future__ import annotations

from contracts.portal import PortalClient
from portal.rpc_api import PortalService
from tests.support.contract_check import client_mismatches


def test_every_served_method_has_a_client_method_of_the_same_shape() -> None:
    assert client_mismatches(PortalService, PortalClient) == []
