"""A transport that records what it sends: the exact calls and casts a component makes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rpc import Transport
from rpc.base import EventHandler, ServiceHandle, Subscription
from rpc.messages import Reply, Request

__all__ = ["RecordingTransport", "Sent"]


@dataclass(frozen=True)
class Sent:
    """One message sent: ``kind`` is ``"call"`` or ``"cast"``; ``timeout`` is that of a call."""

    kind: str
    target: str
    method: str
    args: dict[str, Any] | None
    timeout: float | None = None


class RecordingTransport(Transport):
    """``inner`` with every call and cast recorded in ``sent``, in order, before it goes out."""

    def __init__(self, inner: Transport) -> None:
        super().__init__(inner.node_id, call_timeout=inner.call_timeout)
        self.inner = inner
        self.sent: list[Sent] = []

    @property
    def connected(self) -> bool:
        return self.inner.connected

    def of(self, method: str) -> list[Sent]:
        """What was sent of ``method``, in order."""
        return [sent for sent in self.sent if sent.method == method]

    async def _shutdown(self) -> None:
        await self.inner.close()

    async def serve(self, service: str, handler: object, *, single_active: bool = False) -> ServiceHandle:
        return await self.inner.serve(service, handler, single_active=single_active)

    async def call(
        self, target: str, method: str, args: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        self.sent.append(Sent("call", target, method, args, timeout))
        return await self.inner.call(target, method, args, timeout)

    async def cast(self, target: str, method: str, args: dict[str, Any] | None = None) -> None:
        self.sent.append(Sent("cast", target, method, args))
        await self.inner.cast(target, method, args)

    # ``call`` and ``cast`` above forward whole requests; what they would send through is the inner one's.
    async def _exchange(self, target: str, request: Request, timeout: float) -> Reply | None:
        return await self.inner._exchange(target, request, timeout)

    async def _post(self, target: str, request: Request) -> None:
        await self.inner._post(target, request)

    async def publish_event(self, topic: str, payload: Any) -> None:
        await self.inner.publish_event(topic, payload)

    async def subscribe_events(self, pattern: str, handler: EventHandler) -> Subscription:
        return await self.inner.subscribe_events(pattern, handler)
