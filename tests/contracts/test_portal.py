"""The portal's two sides cannot drift: every method ``PortalService`` serves has a ``PortalClient``
method taking the same parameters (names, types, defaults, keyword-only there) and answering the same
type, and the client names no method the service does not serve."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest

from contracts.portal import PortalClient
from portal.rpc_api import PortalService
from rpc import rpc_method_names

#: What a client method takes besides the service's parameters: the call's bound (not sent).
_CLIENT_ONLY = {"timeout"}


def _parameters(func: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    hints = typing.get_type_hints(func)
    return {name: (hints[name], parameter.default)
            for name, parameter in inspect.signature(func).parameters.items() if name != "self"}


def _returns(func: Callable[..., Any]) -> Any:
    return typing.get_type_hints(func)["return"]


@pytest.mark.parametrize("method", rpc_method_names(PortalService))
def test_each_served_method_has_a_client_method_with_the_same_parameters(method: str) -> None:
    served = getattr(PortalService, method)
    client = getattr(PortalClient, method, None)
    assert client is not None and inspect.iscoroutinefunction(client), f"PortalClient has no {method}"
    given = {name: spec for name, spec in _parameters(client).items() if name not in _CLIENT_ONLY}
    assert given == _parameters(served)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY
               for name, p in inspect.signature(client).parameters.items() if name != "self")
    assert _returns(client) == _returns(served)


def test_the_client_names_only_served_methods() -> None:
    served = set(rpc_method_names(PortalService))
    called = {name for name, member in vars(PortalClient).items()
              if not name.startswith("_") and inspect.iscoroutinefunction(member)}
    assert called == served
