"""The one messaging layer of Switchboard: calls, casts and fault events over a :class:`Transport`."""

from .base import Later, ServiceHandle, Subscription, Transport, request_id, resumable, rpc_method, rpc_method_names
from .errors import Declined, RpcConnectionLost, RpcError, RpcNoService, RpcRemoteError, RpcTimeout, RpcUnavailable, ServiceError
from .factory import create_transport
from .local import LocalBroker, LocalTransport
from .settings import RpcSettings

__all__ = [
    "Later",
    "Transport",
    "ServiceHandle",
    "Subscription",
    "rpc_method",
    "rpc_method_names",
    "resumable",
    "request_id",
    "RpcError",
    "RpcRemoteError",
    "RpcTimeout",
    "RpcUnavailable",
    "RpcConnectionLost",
    "RpcNoService",
    "ServiceError",
    "Declined",
    "create_transport",
    "LocalBroker",
    "LocalTransport",
    "RpcSettings",
]
