"""Where else a participant may relog in: the other live portals of its ISP and region.

An extension client is told, in its ``login`` and ``relogin`` answers, a short list of other portals'
public URLs (``alternatives``, ``docs/protocol.md`` §3.9), so that when this portal dies it relogs in
at a sibling by itself instead of retrying a dead address.  The list comes from the cluster
manager's ``portals`` (the scheduler's ISP/region rules) and is kept per preference for
``alternatives_ttl`` seconds: a burst of logins (the clients of a dead sibling arriving) costs one
call per preference, not one per login.  A stale entry is served at once while one refresh runs; a
missing one is waited for at most ``alternatives_timeout`` — a cluster manager that cannot answer
delays no login by more, and the answer is then an empty list.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping

from background import Background
from contracts.cluster import ClusterClient
from rpc import RpcError, Transport
from rpc.addresses import public_url

from .logs import EventLog
from .settings import PortalSettings

__all__ = ["Alternatives"]

_Key = tuple[str | None, str | None]


class Alternatives:
    """The alternatives of each preference ``{isp, region}``, fetched and cached (the only writer).

    :param cluster: the cluster manager's service name.
    :param worker_id: this portal (never its own alternative).
    :param clock: seconds, monotonic (default: the loop's clock).
    """

    def __init__(
        self,
        transport: Transport,
        settings: PortalSettings,
        *,
        cluster: str,
        worker_id: str,
        background: Background,
        log: EventLog,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.transport = transport
        self.settings = settings
        self._manager = ClusterClient(transport, cluster)
        self.worker_id = worker_id
        self.background = background
        self.log = log
        self._clock = clock
        #: preference → (urls, when fetched); the least recently fetched is forgotten first.
        self._cache: OrderedDict[_Key, tuple[list[str], float]] = OrderedDict()
        self._inflight: dict[_Key, asyncio.Task[list[str]]] = {}

    async def of(self, origin: object) -> list[str]:
        """Up to ``settings.alternatives`` URLs of other portals for a participant whose join token
        named ``origin`` (``{isp, region}``; anything else means no preference), best first."""
        if self.settings.alternatives <= 0:
            return []
        key = _key(origin)
        entry = self._cache.get(key)
        if entry is not None:
            urls, fetched = entry
            if self._now() - fetched >= self.settings.alternatives_ttl:
                self._refresh(key)
            return list(urls)
        task = self._refresh(key)
        try:
            return list(await asyncio.wait_for(asyncio.shield(task), self.settings.alternatives_timeout))
        except TimeoutError:
            self.log.info("alternatives_late", isp=key[0], region=key[1])
            return []

    def _refresh(self, key: _Key) -> asyncio.Task[list[str]]:
        task = self._inflight.get(key)
        if task is None:
            task = self.background.spawn(self._fetch(key), name="portal-alternatives")
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return task

    async def _fetch(self, key: _Key) -> list[str]:
        isp, region = key
        preference = {k: v for k, v in (("isp", isp), ("region", region)) if v is not None}
        try:
            found = await self._manager.portals(preference=preference, exclude=[self.worker_id],
                                                limit=self.settings.alternatives, timeout=self.settings.cluster_timeout)
        except RpcError as exc:
            self.log.info("alternatives_unavailable", error=exc.code)
            found = []
        urls = [public_url(p.host, p.secure) for p in found]
        self._cache[key] = (urls, self._now())
        self._cache.move_to_end(key)
        while len(self._cache) > self.settings.alternatives_cache_size:
            self._cache.popitem(last=False)
        return urls

    def _now(self) -> float:
        return (self._clock or asyncio.get_running_loop().time)()


def _key(origin: object) -> _Key:
    if not isinstance(origin, Mapping):
        return (None, None)
    isp, region = origin.get("isp"), origin.get("region")
    return (isp if isinstance(isp, str) else None, region if isinstance(region, str) else None)
