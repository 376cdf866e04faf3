"""A factory of started transports of one kind (in-process or RabbitMQ) for a test."""

from __future__ import annotations

import uuid

from rpc import LocalBroker, RpcSettings, Transport
from rpc.amqp import AmqpTransport

__all__ = ["TransportFactory"]


class TransportFactory:
    """Makes transports that can reach each other; ``close()`` closes every one it made."""

    def __init__(self, kind: str, broker_url: str = "") -> None:
        self.kind = kind
        self.broker_url = broker_url
        self.local = LocalBroker(roundtrip=True)
        self.made: list[Transport] = []

    def settings(self, **overrides: object) -> RpcSettings:
        base = {"broker_url": self.broker_url if self.kind == "amqp" else "", "local_roundtrip": True}
        base.update(overrides)
        return RpcSettings(**base)  # type: ignore[arg-type]

    async def make(self, node_id: str | None = None, **overrides: object) -> Transport:
        node_id = node_id or f"node-{uuid.uuid4().hex[:8]}"
        settings = self.settings(**overrides)
        transport: Transport
        if self.kind == "amqp":
            transport = AmqpTransport(node_id, settings)
        else:
            transport = self.local.transport(node_id, call_timeout=settings.call_timeout)
        await transport.start()
        self.made.append(transport)
        return transport

    async def close(self) -> None:
        for transport in reversed(self.made):
            await transport.close()
        self.made.clear()
