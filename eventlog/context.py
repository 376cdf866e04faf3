"""Ids bound to everything one asyncio task logs (an HTTP request, a client's request), whichever
component's :class:`~eventlog.EventLog` writes the event."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["bound", "context_fields"]

_fields: ContextVar[dict[str, Any]] = ContextVar("eventlog_fields", default={})


def context_fields() -> dict[str, Any]:
    """The ids bound in the running task (do not change the dict)."""
    return _fields.get()


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every event logged in this task (and the tasks it starts) inside the block."""
    token = _fields.set({**_fields.get(), **fields})
    try:
        yield
    finally:
        _fields.reset(token)
