"""Structured log events of the messaging layer; see :class:`eventlog.EventLog`."""

from __future__ import annotations

from eventlog import EventLog

__all__ = ["RpcLog", "AmqpLog", "LocalLog", "WorkerLog"]


class RpcLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.rpc"


class AmqpLog(EventLog):
    """The RabbitMQ transport."""

    __slots__ = ()
    LOGGER = "switchboard.rpc.amqp"
    COMPONENT = "rpc"


class LocalLog(EventLog):
    """The in-process transport."""

    __slots__ = ()
    LOGGER = "switchboard.rpc.local"
    COMPONENT = "rpc"


class WorkerLog(EventLog):
    """A cluster worker's membership: join, keepalives, load reports, task reports."""

    __slots__ = ()
    LOGGER = "switchboard.worker"
