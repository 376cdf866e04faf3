"""The token API as a component: ``start()`` binds, ``stop()`` releases (idempotent)."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from credentials import Keyring
from edge import Guard, GuardedSite
from rpc import Transport

from .app import create_app
from .logs import log
from .middlewares import error_body
from .settings import TokenApiSettings

__all__ = ["TokenApi"]



class TokenApi:
    """The token API on ``settings.host:settings.port`` (port 0 picks a free one; see :attr:`port`).

    :param transport: a started transport; the API serves ``rooms`` on it and calls the cluster
        manager ``cluster_name`` through it.  The caller closes it.
    :param keyring: the cluster's signing keys (``credentials.Keyring(settings.keys.keys)``).
    :param extra_routes: more routes on the same server (the admin relay).

    Usage::

        api = TokenApi(transport, settings.token_api, Keyring(settings.keys.keys))
        await api.start()
        ...
        await api.stop()
    """

    def __init__(
        self,
        transport: Transport,
        settings: TokenApiSettings,
        keyring: Keyring,
        *,
        cluster_name: str = "cluster",
        extra_routes: Sequence[web.RouteDef] | None = None,
    ) -> None:
        self.settings = settings
        self.app = create_app(settings, transport, keyring, cluster_name=cluster_name, extra_routes=extra_routes)
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None
        self._port: int | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        """The bound port (the real one when ``settings.port`` is 0)."""
        if self._port is None:
            raise RuntimeError("the token API is not started")
        return self._port

    async def start(self) -> None:
        """Open the room store, serve ``rooms``, bind HTTP; idempotent.  A stopped API cannot restart."""
        if self._runner is not None:
            return
        if self._stopped:
            raise RuntimeError("this TokenApi was stopped; make a new one")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self._runner = runner
        try:
            await runner.setup()
            guard = Guard(self.settings.header_timeout, self.settings.body_timeout, error_body=error_body)
            site = GuardedSite(runner, self.settings.host, self.settings.port, guard)
            await site.start()
        except BaseException:
            self._runner = None
            self._stopped = True
            await runner.cleanup()
            raise
        self._site = site
        self._port = _bound_port(runner)
        log.info("token_api_started", host=self.settings.host, port=self._port)

    async def stop(self) -> None:
        """Stop serving HTTP and ``rooms``, close the room store; idempotent."""
        self._stopped = True
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        log.info("token_api_stopped", port=self._port)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the token API bound no TCP address")
