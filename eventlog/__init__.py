"""The structured logger of every component, at the bottom of the layering (it imports no component).

:class:`EventLog` writes one event per line with its ids bound; :func:`configure_logging` sets the
line format (``key=value`` text or JSON, ``--log-json``); :data:`unhandled` counts the unexpected
exceptions each component logged (:meth:`EventLog.exception`), for ``/metrics``.
"""

from .context import bound
from .events import EventLog
from .formatting import configure_logging
from .loop import log_loop_exceptions
from .tally import UnhandledTally, unhandled

__all__ = ["EventLog", "bound", "UnhandledTally", "configure_logging", "log_loop_exceptions", "unhandled"]
