"""Does a typed client match the service it calls?  :func:`client_mismatches` lists every served
``@rpc_method`` whose client method is missing or differs in its parameters (names, annotated types,
defaults, keyword-only) or its result type, and every client method that names no served method.
Every typed client in ``contracts/`` is checked with it (tests/contracts, tests/cluster_manager,
tests/token_api)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterable

from rpc import rpc_method_names

__all__ = ["client_mismatches", "CALL_OPTIONS"]

#: Client parameters that are not the served method's: how to send, not what.
CALL_OPTIONS = frozenset({"timeout", "wait"})
#: A client method ``cast_<name>`` sends ``<name>`` without waiting for its answer.
CAST_PREFIX = "cast_"


def _parameters(func: object, leave_out: Iterable[str]) -> dict[str, tuple[object, object]]:
    hints = typing.get_type_hints(func, include_extras=True)
    skipped = {"self", *leave_out}
    return {name: (hints.get(name), parameter.default)
            for name, parameter in inspect.signature(func).parameters.items()  # type: ignore[arg-type]
            if name not in skipped}


def client_mismatches(service: type, client: type, *, carried: Iterable[str] = (),
                      methods: Iterable[str] | None = None) -> list[str]:
    """What differs between ``service``'s RPC methods and ``client``'s methods of the same names.

    :param carried: served parameters the client sends on every call itself (``admin_key``).
    :param methods: the served methods the client covers (default: all of them).
    """
    carried = frozenset(carried)
    covered = sorted(rpc_method_names(service) if methods is None else methods)
    found = [f"{name}: the client names a method that is not served"
             for name, member in vars(client).items()
             if not name.startswith("_") and inspect.iscoroutinefunction(member)
             and name.removeprefix(CAST_PREFIX) not in covered]
    for name in covered:
        method = getattr(client, name, None)
        cast = method is None and hasattr(client, CAST_PREFIX + name)
        if cast:
            method = getattr(client, CAST_PREFIX + name)
        if method is None:
            found.append(f"{name}: no client method")
            continue
        served = getattr(service, name)
        wanted = _parameters(served, carried)
        given = _parameters(method, CALL_OPTIONS)
        if wanted != given:
            found.append(f"{name}: served {wanted}, client {given}")
        if any(parameter.kind is not inspect.Parameter.KEYWORD_ONLY
               for parameter in list(inspect.signature(method).parameters.values())[1:]):
            found.append(f"{name}: the client's arguments are not keyword-only")
        served_result = typing.get_type_hints(served, include_extras=True).get("return")
        client_result = typing.get_type_hints(method, include_extras=True).get("return")
        # An answer the service hands on as it was built (``Any``) is typed on the client's side only.
        if not cast and served_result not in (None, typing.Any) and served_result != client_result:
            found.append(f"{name}: served returns {served_result}, client {client_result}")
    return found
