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

import msgspec

from rpc import Later, LocalBroker, RpcNoService, ServiceError, ServiceHandle, resumable, rpc_method
from rpc.base import rpc_methods
from rpc.messages import Reply, Request
from rpc.local import Continuation, LocalTransport

__all__ = ["Spy", "SpyTransport"]


class Spy:
    """Records ``(method, args)`` of every call to the spied service, in arrival order (``args`` as
    JSON-like builtins, as they came over the wire)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        #: Replies of these methods wait for the event (the call has been served already).
        self._held: dict[str, asyncio.Event] = {}
        #: Calls of these methods fail as an unreachable service would (``unavailable``).
        self.unreachable: set[str] = set()
        #: Calls of these methods wait until the event is set before they are served.
        self._stalled: dict[str, asyncio.Event] = {}
        #: The next replies of these methods are lost (served, then ``unavailable`` to the caller).
        self._replies_to_lose: dict[str, int] = {}
        #: The next reply of these methods is changed by the function (a faulty service).
        self._rewrites: dict[str, Callable[[Any], Any]] = {}
        #: The next call of these methods is refused with this ``(code, message)``, unserved.
        self._refusals: dict[str, tuple[str, str]] = {}

    def called(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    def hold_replies(self, method: str) -> asyncio.Event:
        """From now on the answers of ``method`` wait until the returned event is set."""
        gate = self._held[method] = asyncio.Event()
        return gate

    def stop_holding(self, method: str) -> None:
        """Answers of ``method`` from now on go out at once (those already held still wait)."""
        self._held.pop(method, None)

    def stall_calls(self, method: str) -> asyncio.Event:
        """From now on calls of ``method`` are served only once the returned event is set."""
        gate = self._stalled[method] = asyncio.Event()
        return gate

    def lose_replies(self, method: str, count: int = 1) -> None:
        """The next ``count`` calls of ``method`` are served, but their callers get ``unavailable``
        (the reply was lost on the way back: a caller that retries sends the same call again)."""
        self._replies_to_lose[method] = count

    def rewrite_reply(self, method: str, change: Callable[[Any], Any]) -> None:
        """The next reply of ``method`` is ``change(reply)``: a service answering wrongly."""
        self._rewrites[method] = change

    def refuse_next(self, method: str, code: str, message: str = "") -> None:
        """The next call of ``method`` is refused with ``code`` and ``message`` (and not served)."""
        self._refusals[method] = (code, message)

    def wrap(self, handler: object) -> object:
        """A service with the same RPC methods (and signatures) as ``handler``, through this spy."""
        namespace: dict[str, Any] = {}
        for name, method in rpc_methods(handler).items():
            namespace[name] = staticmethod(self._forward(name, method))
        return type(f"Spied{type(handler).__name__}", (), namespace)()

    def _forward(self, name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)  # the real signature, so bad arguments are refused as before
        async def forward(**args: Any) -> Any:
            self.calls.append((name, msgspec.to_builtins(args)))  # as they came over the wire
            if name in self.unreachable:
                raise ServiceError("unavailable", f"{name}: injected failure")
            stalled = self._stalled.get(name)
            if stalled is not None:
                await stalled.wait()
            refusal = self._refusals.pop(name, None)
            if refusal is not None:
                raise ServiceError(*refusal)
            result = await method(**args)
            if self._replies_to_lose.get(name, 0) > 0:
                self._replies_to_lose[name] -= 1
                raise ServiceError("unavailable", f"{name}: the reply was lost (injected)")
            change = self._rewrites.pop(name, None)
            if change is not None:
                if isinstance(result, Later):  # the answer it stands for, once its future is done
                    result = Later(result.future, change(msgspec.to_builtins(result.value)))
                else:
                    result = change(msgspec.to_builtins(result))
            gate = self._held.get(name)
            if gate is not None:
                await gate.wait()
            return result

        # As safe to resume outside a task as the method: it awaits only the spy's events besides it.
        return rpc_method(resumable=resumable(method))(forward)


class SpyTransport(LocalTransport):
    """An in-process transport whose services named in ``spies`` are served through their spy.

    Its calls to the services named in ``unserved`` find nobody serving them (``RpcNoService``, the
    call made to no one), while they are still served for everyone else: a partition between a
    worker and the broker that the cluster manager did not see (no departure, no ``exit.quit``)."""

    def __init__(self, broker: LocalBroker, node_id: str, spies: dict[str, Spy]) -> None:
        super().__init__(broker, node_id)
        self.spies = spies
        self.unserved: set[str] = set()

    async def _exchange(self, target: str, request: Request, timeout: float) -> Reply | None:
        if target in self.unserved:
            raise RpcNoService(f"no service {target!r} (injected)")
        return await super()._exchange(target, request, timeout)

    def call_then(self, target: str, method: str, args: dict[str, Any] | None, then: Continuation,
                  timeout: float | None = None) -> None:
        if target in self.unserved:
            then(None, RpcNoService(f"no service {target!r} (injected)"))
            return
        super().call_then(target, method, args, then, timeout)

    async def serve(self, service: str, handler: object, *, single_active: bool = False) -> ServiceHandle:
        spy = self.spies.get(service)
        return await super().serve(service, handler if spy is None else spy.wrap(handler), single_active=single_active)
