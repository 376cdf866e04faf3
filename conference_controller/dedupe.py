"""Per-participant de-duplication of client requests by request id (a bounded window)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from rpc import ServiceError

__all__ = ["Deduper"]

# The outcome of a request: ("ok", result) or ("error", (code, message)).
_Outcome = tuple[str, Any]


class Deduper:
    """Runs an action once per request id; a repeat gets the first answer (result or coded error).

    The window keeps the last ``size`` ids.  Actions that fail with something other than a coded
    :class:`ServiceError` are forgotten, so a retry (or a concurrent repeat) runs them again.
    The window is made with the first request id (one deduper per participant; many never send one).
    """

    __slots__ = ("size", "_seen")

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._seen: OrderedDict[str, asyncio.Future[_Outcome]] | None = None

    def __len__(self) -> int:
        return len(self._seen) if self._seen is not None else 0

    async def run(self, request_id: str | None, action: Callable[[], Awaitable[Any]]) -> Any:
        if request_id is None:
            return await action()
        seen = self._seen
        if seen is None:
            seen = self._seen = OrderedDict()
        earlier = seen.get(request_id)
        if earlier is not None:
            kind, value = await asyncio.shield(earlier)
            if kind == "error":
                raise ServiceError(*value)
            if kind == "retry":
                return await self.run(request_id, action)
            return value
        outcome: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        seen[request_id] = outcome
        while len(seen) > self.size:
            seen.popitem(last=False)
        try:
            result = await action()
        except ServiceError as exc:
            outcome.set_result(("error", (exc.code, exc.message)))
            raise
        except BaseException:
            seen.pop(request_id, None)
            outcome.set_result(("retry", None))
            raise
        outcome.set_result(("ok", result))
        return result
