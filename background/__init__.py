"""The one owner of a component's background tasks (:class:`Background`): what a component starts on
the side, each failure logged through the component's own log, all of it ended by the component's
``stop``.  It imports only :mod:`eventlog` (the bottom of the layering, with ``rpc/``)."""

from .tasks import Background

__all__ = ["Background"]
