"""A window on a real RPC service: every call recorded, and faults injected on cue.

A :class:`SpyTransport` is an in-process transport that serves the services it is told to spy on
through a :class:`Spy`.  The real component (controller, cluster manager) still answers every call
and owns every rule; the spy only records what reached it and can hold a reply back (the fault a
real component cannot produce on cue: a slow answer that lets other traffic overtake it) or refuse
calls as if the service could not be reached.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from rpc import LocalBroker, ServiceError, ServiceHandle, rpc_method
from rpc.base import rpc_methods
from rpc.local import LocalTransport

__all__ = ["Spy", "SpyTransport"]


class Spy:
    """Records ``(method, args)`` of every call to the spied service, in arrival order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: Replies of these methods wait for the event (the call has been served already).
        self._held: dict[str, asyncio.Event] = {}
        #: Calls of these methods fail as an unreachable service would (``unavailable``).
        self.unreachable: set[str] = set()

    def called(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    def hold_replies(self, method: str) -> asyncio.Event:
        """From now on the answers of ``method`` wait until the returned event is set."""
        gate = self._held[method] = asyncio.Event()
        return gate

    def wrap(self, handler: object) -> object:
        """A service with the same RPC methods (and signatures) as ``handler``, through this spy."""
        namespace: dict[str, Any] = {}
        for name, method in rpc_methods(handler).items():
            namespace[name] = staticmethod(self._forward(name, method))
        return type(f"Spied{type(handler).__name__}", (), namespace)()

    def _forward(self, name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)  # the real signature, so bad arguments are refused as before
        async def forward(**args: Any) -> Any:
            self.calls.append((name, args))
            if name in self.unreachable:
                raise ServiceError("unavailable", f"{name}: injected failure")
            result = await method(**args)
            gate = self._held.get(name)
            if gate is not None:
                await gate.wait()
            return result

        return rpc_method(forward)


class SpyTransport(LocalTransport):
    """An in-process transport whose services named in ``spies`` are served through their spy."""

    def __init__(self, broker: LocalBroker, node_id: str, spies: dict[str, Spy]) -> None:
        super().__init__(broker, node_id)
        self.spies = spies

    async def serve(self, service: str, handler: object) -> ServiceHandle:
        spy = self.spies.get(service)
        return await super().serve(service, handler if spy is None else spy.wrap(handler))
