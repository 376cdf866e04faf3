"""What every typed client of ``contracts`` holds: the transport it calls over and the service it calls."""

from __future__ import annotations

from rpc import Transport

__all__ = ["ServiceClient"]


class ServiceClient:
    """Calls the service ``target`` (its RPC name: a worker id, or a service's name) over ``transport``."""

    __slots__ = ("_transport", "_target")

    def __init__(self, transport: Transport, target: str) -> None:
        self._transport = transport
        self._target = target

    @property
    def target(self) -> str:
        """The service's RPC name."""
        return self._target
