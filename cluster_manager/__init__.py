"""The cluster manager: RPC service ``cluster`` with the worker registry, liveness, task
reservations (via :mod:`scheduler`), ``exit.quit`` fault events and the admin methods.

>>> manager = ClusterManager(transport, ClusterManagerSettings(name="cluster"))  # doctest: +SKIP
>>> await manager.start()  # doctest: +SKIP
"""

from .admin import task_digest
from .admin_service import ADMIN_METHODS
from .admin_http import admin_rpc_routes
from .faults import FaultLog
from .manager import ClusterManager
from .settings import ClusterManagerSettings

__all__ = [
    "ClusterManager",
    "ClusterManagerSettings",
    "admin_rpc_routes",
    "ADMIN_METHODS",
    "task_digest",
    "FaultLog",
]
