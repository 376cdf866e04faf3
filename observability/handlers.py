"""RPC handler latency by method, fed by a transport's ``on_handled`` (:mod:`rpc.base`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

__all__ = ["HandlerLatency"]

#: Seconds: an in-process answer takes microseconds, a journaled one milliseconds, a failover seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HandlerLatency:
    """``switchboard_rpc_handler_seconds{method}``: how long this process's RPC handlers took.
    Its children are looked up once per method (``labels()`` costs microseconds)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram("switchboard_rpc_handler_seconds", "Time an RPC handler of this process took",
                                   ["method"], buckets=BUCKETS, registry=registry)
        self._children: dict[str, Histogram] = {}

    def observe(self, method: str, seconds: float) -> None:
        child = self._children.get(method)
        if child is None:
            child = self._children[method] = self.histogram.labels(method)
        child.observe(seconds)
