"""Choose the transport from the settings: in-process without a broker URL, RabbitMQ with one."""

from __future__ import annotations

from .base import Transport
from .local import LocalBroker
from .settings import RpcSettings

__all__ = ["create_transport"]


def create_transport(node_id: str, settings: RpcSettings, *, local_broker: LocalBroker | None = None) -> Transport:
    """A transport for ``node_id``: RabbitMQ when ``settings.broker_url`` is set, else in-process.

    Every in-process transport of one embedded cluster must share ``local_broker``.
    """
    if settings.broker_url:
        from .amqp import AmqpTransport

        return AmqpTransport(node_id, settings)
    if local_broker is None:
        raise ValueError("an in-process transport needs the embedded cluster's LocalBroker")
    return local_broker.transport(node_id, call_timeout=settings.call_timeout)
