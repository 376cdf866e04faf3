"""The token API: join tokens (``POST /token``, OWT's ``POST /v1/rooms/{room}/tokens``), room
configuration (OWT's ``/v1/rooms``, persisted in SQLite, served to controllers as RPC ``rooms``),
health, readiness and metrics.  See ``docs/token-api.md``.
"""

from .app import create_app
from .errors import ApiError
from .server import TokenApi
from .service import UNKNOWN_ROOM, RoomsService, rooms_service_name
from .settings import TokenApiSettings

__all__ = ["TokenApi", "TokenApiSettings", "create_app", "ApiError", "RoomsService", "rooms_service_name", "UNKNOWN_ROOM"]
