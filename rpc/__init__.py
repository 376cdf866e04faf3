"""The one messaging layer of Switchboard: calls, casts and fault events over a :class:`Transport`."""

from .base import ServiceHandle, Subscription, Transport, rpc_method
from .errors import RpcError, RpcRemoteError, RpcTimeout, RpcUnavailable, ServiceError
from .factory import create_transport
from .local import LocalBroker, LocalTransport
from .settings import RpcSettings

__all__ = [
    "Transport",
    "ServiceHandle",
    "Subscription",
    "rpc_method",
    "RpcError",
    "RpcRemoteError",
    "RpcTimeout",
    "RpcUnavailable",
    "ServiceError",
    "create_transport",
    "LocalBroker",
    "LocalTransport",
    "RpcSettings",
]
