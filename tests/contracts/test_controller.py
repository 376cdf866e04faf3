"""The controller's two sides cannot drift: every method ``ControllerService`` serves has a
``ControllerClient`` method taking the same parameters (names, types, defaults) and answering the same
type, and the client names no method the service does not serve."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pytest

from conference_controller.service import ControllerService
from contracts.controller import ControllerClient
from rpc import rpc_method_names

#: What a client method may take besides the handler's parameters: the call's bound.
_CLIENT_ONLY = {"timeout"}


def _parameters(func: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    hints = typing.get_type_hints(func)
    return {name: (hints.get(name, Any), parameter.default)
            for name, parameter in inspect.signature(func).parameters.items() if name != "self"}


def _returns(func: Callable[..., Any]) -> Any:
    return typing.get_type_hints(func).get("return", Any)


@pytest.mark.parametrize("method", rpc_method_names(ControllerService))
def test_each_served_method_has_a_client_method_with_the_same_parameters(method: str) -> None:
    served = getattr(ControllerService, method)
    client = getattr(ControllerClient, method, None)
    assert client is not None, f"ControllerClient has no {method}"
    wanted = _parameters(served)
    given = {name: spec for name, spec in _parameters(client).items() if name not in _CLIENT_ONLY}
    assert given == wanted
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY
               for name, p in inspect.signature(client).parameters.items() if name != "self")
    answer = _returns(served)
    if answer is not Any:  # an answer kept as built (a journaled one) is typed on the client's side only
        assert _returns(client) == answer


def test_the_client_names_only_served_methods() -> None:
    served = set(rpc_method_names(ControllerService))
    for name, member in vars(ControllerClient).items():
        if name.startswith("_") or not inspect.iscoroutinefunction(member):
            continue
        assert name.removeprefix("cast_") in served, f"ControllerClient.{name} has no served method"
