"""Settings of the RPC layer (a section of the switchboard configuration)."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["RpcSettings", "WorkerSettings"]


class RpcSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: ``amqp://user:pass@host:port/vhost``; empty = in-process transport (embedded mode).  The nodes of a
    #: RabbitMQ cluster: their URLs separated by commas; a component connects to the first that answers
    #: and, when its connection is lost, goes on at the next one (docs/operations.md, *Broker cluster*).
    broker_url: str = ""
    #: Default timeout of a call, seconds (OWT: 2 s).
    call_timeout: float = 2.0
    #: Seconds between reconnection attempts to the broker (aio-pika ``reconnect_interval``).
    reconnect_interval: float = 1.0
    #: AMQP heartbeat, seconds: a dead broker connection is noticed after ~2 of these.
    heartbeat: int = 5
    #: Longest a call waits to publish when the connection is shaky, seconds (fail fast when down).
    publish_timeout: float = 1.5
    #: While the broker connection is lost, a call, cast or event waits this long for it to come back
    #: before failing with ``RpcUnavailable`` (a call no longer than its own timeout), seconds: a broker
    #: restart of a few seconds costs latency, not errors; for as long again after it came back, a call
    #: or cast to a service nobody serves yet waits for its server to declare its queue again.  0: fail
    #: at once, also while the connection is back but its queues and consumers are not restored yet.
    #: Starting to serve a queue the broker refuses (a quorum queue's declare under load) is tried
    #: again for this long too.
    outage_wait: Annotated[float, msgspec.Meta(ge=0, le=300)] = 5.0
    #: A server's reply refused because its channel is being restored (the broker came back, or the
    #: connection moved to another node, while the request was handled) is published again once the
    #: channel is back, for up to this long, seconds; 0: dropped at once (its caller then waits out its
    #: own timeout).  Apart from ``outage_wait``, which is how long a *call* waits through an outage: a
    #: caller that fails fast still gets the answer to a request the server took.
    reply_wait: Annotated[float, msgspec.Meta(ge=0, le=300)] = 5.0
    #: Messages a process handles at once per service (AMQP prefetch).
    prefetch: int = 128
    #: Messages the active server of a single-active service (the cluster manager with standbys)
    #: takes at once: what it had taken when it froze goes to the next one.
    single_active_prefetch: int = 8
    #: Exchange for fault events (topic semantics).
    events_exchange: str = "switchboard.events"
    #: JSON-round-trip every payload on the in-process transport (tests turn this on).
    local_roundtrip: bool = False


class WorkerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How a worker (portal, controller, …) keeps its place in the cluster."""

    #: RPC service name of the cluster manager.
    cluster_name: str = "cluster"
    #: Seconds between keepalives (OWT: 0.8 s).
    keepalive_interval: float = 0.8
    #: Timeout of one keepalive call, seconds.
    keepalive_timeout: float = 1.0
    #: More than this many failed keepalives in a row → recovery (rejoin).
    keepalive_max_failures: int = 3
    #: Join attempts before giving up (OWT: 60 × 0.8 s).
    join_retries: int = 60
    #: Seconds between join attempts.
    join_interval: float = 0.8
    #: Seconds between load checks; a load is reported when it changed, and at least every 10 checks.
    load_report_interval: float = 1.0
