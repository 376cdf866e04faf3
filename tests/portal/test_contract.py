"""The portal's service and its client agree: every RPC method of ``PortalService`` has a
``PortalClient`` method of the same name with the same parameters (names, types, defaults), and the
client has no method the service lacks."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from contracts.portal import PortalClient
from portal.rpc_api import PortalService
from rpc.base import rpc_method_names

#: What a client method takes beyond the service's parameters (the caller's wait, not sent).
CLIENT_ONLY = {"self", "timeout"}


def _parameters(func: Any, skip: set[str]) -> list[tuple[str, Any, Any]]:
    hints = typing.get_type_hints(func)
    return [(name, hints[name], parameter.default) for name, parameter in inspect.signature(func).parameters.items()
            if name not in skip]


def test_every_service_method_has_a_client_method_with_the_same_parameters() -> None:
    served = rpc_method_names(PortalService)
    assert served  # the comparison below compares something
    for name in served:
        client_method = getattr(PortalClient, name, None)
        assert client_method is not None and inspect.iscoroutinefunction(client_method), f"PortalClient.{name}"
        assert _parameters(client_method, CLIENT_ONLY) == _parameters(getattr(PortalService, name), {"self"}), name


def test_the_client_calls_nothing_the_service_does_not_serve() -> None:
    calls = {name for name, member in vars(PortalClient).items()
             if not name.startswith("_") and inspect.iscoroutinefunction(member)}
    assert calls == set(rpc_method_names(PortalService))
