"""The portal: Socket.IO server for OWT clients (login, relogin, relay, delivery), a cluster worker."""

from .portal import Portal
from .settings import PortalSettings

__all__ = ["Portal", "PortalSettings"]
