"""The cluster manager: RPC service ``cluster`` with the worker registry, liveness, task
reservations (via :mod:`scheduler`), ``exit.quit`` fault events and the admin methods.

>>> manager = ClusterManager(transport, ClusterManagerSettings(name="cluster"))  # doctest: +SKIP
>>> await manager.start()  # doctest: +SKIP
"""

from .admin import ADMIN_METHODS, task_digest
from .admin_http import admin_rpc_routes
from .faults import Fault, FaultLog, FaultPage
from .freshman import IN_SERVICE, INITIALIZING
from .manager import KEEPALIVE_OK, KEEPALIVE_WHOAREYOU, ClusterManager
from .messages import BoardWorker, ManagerView, Overview, RoomPlacement
from .reaper import EXIT_TOPIC
from .settings import ClusterManagerSettings

__all__ = [
    "ClusterManager",
    "ClusterManagerSettings",
    "admin_rpc_routes",
    "ADMIN_METHODS",
    "EXIT_TOPIC",
    "INITIALIZING",
    "IN_SERVICE",
    "KEEPALIVE_OK",
    "KEEPALIVE_WHOAREYOU",
    "task_digest",
    "Fault",
    "FaultLog",
    "FaultPage",
    "Overview",
    "BoardWorker",
    "ManagerView",
    "RoomPlacement",
]
