"""Exceptions the asyncio loop reports itself (a task's exception nobody retrieved, a failing
callback): logged once as an event, with the loop's context, and counted."""

from __future__ import annotations

import asyncio
from typing import Any

from .events import EventLog

__all__ = ["LoopLog", "log_loop_exceptions"]


class LoopLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.loop"


def log_loop_exceptions(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` report what it catches as ``loop_exception`` events (counted for ``loop``)."""
    loop.set_exception_handler(_report)


def _report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    task = context.get("task") or context.get("future")
    fields: dict[str, Any] = {"message": str(context.get("message", ""))}
    if isinstance(task, asyncio.Task):
        fields["task"] = task.get_name()
    if exc is None:
        LoopLog().exception("loop_exception", exc_info=False, **fields)
    else:
        LoopLog().exception("loop_exception", exc_info=(type(exc), exc, exc.__traceback__), **fields)
