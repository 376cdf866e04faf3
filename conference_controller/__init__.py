"""The conference controller: rooms, participants, streams and per-participant outboxes.

One process hosts many rooms as a cluster worker of purpose ``conference``; portals and media
agents reach it over RPC under its worker id.  See ``docs/controller.md``.
"""

from .controller import PURPOSE, Controller
from .settings import ControllerSettings

__all__ = ["Controller", "ControllerSettings", "PURPOSE"]
