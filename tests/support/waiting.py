"""Polling helpers that replace sleeps in tests."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["wait_until", "TIMEOUT_VARIABLE"]

#: Overrides the default ``timeout`` (seconds).  ``make mutate`` shortens it for the targets whose
#: mutants are mostly killed by a wait that never ends (there only a failure counts, not its message).
TIMEOUT_VARIABLE = "SWITCHBOARD_TEST_WAIT_TIMEOUT"
_DEFAULT_TIMEOUT = 10.0


async def wait_until(
    check: Callable[[], Any | Awaitable[Any]], *, timeout: float | None = None, interval: float = 0.02,
    what: str = "",
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the last value after ``timeout``
    (default 10 s, or ``$SWITCHBOARD_TEST_WAIT_TIMEOUT``)."""
    if timeout is None:
        timeout = float(os.environ.get(TIMEOUT_VARIABLE) or _DEFAULT_TIMEOUT)
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if asyncio.iscoroutine(last) or isinstance(last, Awaitable):
                last = await last
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}: last={last!r}")
        await asyncio.sleep(interval)
