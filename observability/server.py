"""The HTTP port of one component: ``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz``."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .collectors import UnhandledCollector
from .readiness import Readiness
from .settings import ObserveSettings

__all__ = ["ObserveServer", "component_registry"]


def component_registry() -> CollectorRegistry:
    """A registry of a component's own, with the process's CPU, memory and file descriptors, its
    garbage collector's counts (what ``prometheus_client``'s default registry would add) and the
    unexpected exceptions it logged (:class:`~observability.collectors.UnhandledCollector`)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(UnhandledCollector())
    return registry


class ObserveServer:
    """Serves ``registry`` and ``readiness`` on ``settings.host:settings.port`` from :meth:`start`
    to :meth:`stop` (port 0 in the settings: it serves nothing).

    ``/healthz`` is 200 while the process answers at all; ``/readyz`` is 200 with a JSON body while
    ``readiness()`` says the component serves, 503 with the reason otherwise.
    """

    def __init__(self, settings: ObserveSettings, registry: CollectorRegistry,
                 readiness: Callable[[], Readiness]) -> None:
        self.settings = settings
        self.registry = registry
        self.readiness = readiness
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        #: The bound port once started (``None``: off or not started).
        self.port: int | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.port != 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> None:
        """Bind and serve (nothing with port 0).  Idempotent."""
        if not self.enabled or self._runner is not None:
            return
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.settings.host, self.settings.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        self.port = self.settings.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.port = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        readiness = self.readiness()
        return web.json_response(readiness.as_json(), status=readiness.status_code)
