"""The Socket.IO server on aiohttp: sockets, the client events, ``/metrics``, ``/healthz`` and ``/readyz``.

Every client event goes through :meth:`PortalServer._request`: the limits (:meth:`PortalServer._admit`),
the action, and the one place its outcome becomes its ack and is counted
(:meth:`PortalServer._answered`: a :class:`~portal.errors.RequestError` becomes the ``('error', reason)``
ack).  A ``text`` of a connected participant over the in-process transport takes
:meth:`PortalServer._continued` instead: the same limits and the same answer, from the relay's
continuation (:meth:`~portal.relay.Relay.handle_then`), with no coroutine waiting for the controller.

Connections are guarded (:mod:`edge`: header and body deadlines, JSON for aiohttp's own errors),
new ones are limited per client address (:mod:`portal.gate`), and an Engine.IO connection that has
no logged-in participant ``login_timeout`` after it opened is closed at the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge import AddressRateLimiter, Guard, GuardedSite, TrustedProxies, name_server
from observability import Readiness

from .connection import Connection, State
from .errors import Ack, IllegalRequest, RequestError, ok
from .gate import gate_middleware, quiet_body_timeouts
from .limits import SocketLimits
from .login import LoginService
from .logs import EventLog
from .metrics import PortalMetrics
from .packets import JsonPacket
from .eio_socket import in_place
from .sio_manager import InPlaceManager
from .sio_server import PortalSocketServer, SendAck
from .relay import EVENTS, Relay
from .schemas import AckRequest, parse
from .delivery import AckBatcher
from .settings import PortalSettings

__all__ = ["PortalServer", "create_sio"]

Action = Callable[[Connection, Any], Awaitable[Ack]]

_SIO_PATH = "/socket.io/"


def create_sio(settings: PortalSettings) -> socketio.AsyncServer:
    origins = settings.cors_allowed_origins
    return PortalSocketServer(
        async_mode="aiohttp",
        cors_allowed_origins="*" if "*" in origins else list(origins),
        max_http_buffer_size=settings.max_message_bytes,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        logger=False,
        engineio_logger=False,
        serializer=JsonPacket,
        client_manager=InPlaceManager(),
    )


class PortalServer:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        settings: PortalSettings,
        logins: LoginService,
        relay: Relay,
        acks: AckBatcher,
        metrics: PortalMetrics,
        log: EventLog,
    ) -> None:
        self.sio = sio
        self.settings = settings
        self.logins = logins
        self.relay = relay
        self.acks = acks
        self.metrics = metrics
        self.log = log
        trusted = TrustedProxies(settings.trusted_proxies, setting="portal.trusted_proxies")
        connections = AddressRateLimiter(settings.connections_per_address_per_second,
                                         settings.connections_per_address_burst, settings.connection_limit_addresses)
        gate = gate_middleware(_SIO_PATH, connections, trusted, max_body=settings.max_message_bytes,
                               end_session=self._end_session)
        self.app = web.Application(middlewares=[gate])
        quiet_body_timeouts()
        self.app.on_response_prepare.append(name_server)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        #: What ``/readyz`` answers (the portal sets it: started, joined, broker connected).
        self.readiness: Callable[[], Readiness] = lambda: Readiness.not_ready("not started")
        self.sio.attach(self.app, socketio_path=_SIO_PATH.strip("/"))
        self._runner: web.AppRunner | None = None
        self._site: GuardedSite | None = None
        # python-socketio's Engine.IO handlers, wrapped to time the login from the Engine.IO connection.
        self._eio_connect = self.sio.eio.handlers["connect"]
        self._eio_disconnect = self.sio.eio.handlers["disconnect"]
        self.sio.eio.on("connect", self._eio_connected)
        self.sio.eio.on("disconnect", self._eio_disconnected)
        self._login_timers: dict[str, asyncio.TimerHandle] = {}
        self._actions: dict[str, Action] = {
            "login": logins.login,
            "relogin": logins.relogin,
            "logout": self._in_session(lambda conn, _: logins.logout(conn)),
            "refreshReconnectionTicket": self._in_session(logins.refresh),
            "ack": self._in_session(self._ack),
        }
        for event in EVENTS:
            self._actions[event] = self._in_session(self._relayer(event))
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        for event in self._actions:
            self.sio.on(event, self._handler(event))
        if isinstance(self.sio, PortalSocketServer) and relay.in_process:
            for event, route in EVENTS.items():
                if route.call_then is not None:
                    self.sio.continued[event] = self._continued(event)
        self.sio.on("*", self._unknown)

    @property
    def port(self) -> int:
        return self._site.port if self._site is not None else 0

    @property
    def connections(self) -> dict[str, Connection]:
        return self.logins.connections

    async def start(self) -> None:
        """Bind ``settings.host:settings.port``; a failure (the port taken) releases what was set up."""
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self.settings.shutdown_timeout)
        await runner.setup()
        guard = Guard(self.settings.header_timeout, self.settings.body_timeout)
        site = GuardedSite(runner, self.settings.host, self.settings.port, guard)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site

    async def stop(self) -> None:
        """Hold every participant (they may relogin elsewhere), then stop Socket.IO and the web server."""
        for conn in list(self.connections.values()):
            self.connections.pop(conn.sid, None)
            self.logins.socket_lost(conn)
        await self._close_transports()
        await self.sio.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _close_transports(self) -> None:
        """Close every Engine.IO connection so that clients see a transport close (and reconnect,
        possibly elsewhere) at once instead of after a ping timeout.  python-engineio queues a CLOSE
        packet that engine.io-client ignores on websocket; waking the writer with ``None`` makes it
        close the websocket itself."""
        for timer in self._login_timers.values():
            timer.cancel()
        self._login_timers.clear()
        for eio_socket in list(self.sio.eio.sockets.values()):
            await self._close_transport(eio_socket)

    async def _end_session(self, eio_sid: str) -> None:
        eio_socket = self.sio.eio.sockets.get(eio_sid)
        if eio_socket is not None:
            await self._close_transport(eio_socket)

    async def _close_transport(self, eio_socket: Any) -> None:
        """End one Engine.IO connection: its websocket closes, its polling session is gone."""
        if not eio_socket.closed:
            await eio_socket.close(wait=False, reason=self.sio.eio.reason.SERVER_DISCONNECT)
        eio_socket.queue.put_nowait(None)

    async def close_socket(self, sid: str) -> None:
        try:
            await self.sio.disconnect(sid)
        except (KeyError, ValueError, ConnectionError) as exc:
            self.log.debug("close_failed", sid=sid, error=repr(exc))

    async def close_transport(self, sid: str) -> None:
        """Close the socket *and* its Engine.IO connection: a Socket.IO disconnect (so a well-behaved
        client does not reconnect by itself), then the transport itself, so that a client that
        ignores the disconnect packet is cut off too (what a socket taken over must get)."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        await self.close_socket(sid)
        eio_socket = self.sio.eio.sockets.get(eio_sid) if eio_sid is not None else None
        if eio_socket is None:
            return
        await self._close_transport(eio_socket)
        self.sio.eio.sockets.pop(eio_sid, None)

    # -- sockets ---------------------------------------------------------------------------------

    async def _eio_connected(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        self._login_timers[eio_sid] = loop.call_later(self.settings.login_timeout, self._login_deadline, eio_sid)
        eio_socket = self.sio.eio.sockets.get(eio_sid)
        if eio_socket is not None:
            in_place(eio_socket)  # its packets skip the queue while its websocket is idle
        return await self._eio_connect(eio_sid, environ)

    async def _eio_disconnected(self, eio_sid: str, reason: Any = None) -> Any:
        timer = self._login_timers.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()
        return await self._eio_disconnect(eio_sid, reason)

    def _login_deadline(self, eio_sid: str) -> None:
        """``login_timeout`` after the Engine.IO connection: without a participant it is closed."""
        self._login_timers.pop(eio_sid, None)
        eio_socket = self.sio.eio.sockets.get(eio_sid)
        if eio_socket is None or eio_socket.closed:
            return
        sid = self.sio.manager.sid_from_eio_sid(eio_sid, "/")
        conn = self.connections.get(sid) if sid is not None else None
        if conn is not None and conn.session is not None:
            return
        self.log.info("login_timeout", eio_sid=eio_sid, sid=sid, state=conn.state.value if conn else "no_socketio")
        self.metrics.requests.inc("login", "login_timeout")
        self.logins.background.spawn(self._close_transport(eio_socket))

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        limits = SocketLimits(
            rate=self.settings.rate_limit_per_second,
            burst=self.settings.rate_limit_burst,
            max_pending=self.settings.max_pending_requests,
            max_bytes=self.settings.max_request_bytes,
        )
        conn = Connection(sid, limits, self.log)
        self.connections[sid] = conn
        conn.idle_timer = asyncio.get_running_loop().call_later(self.settings.idle_timeout, self._idle, sid)
        self.metrics.sockets.inc()

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.metrics.sockets.dec()
        conn.log.debug("socket_closed", reason=str(reason))
        self.logins.socket_lost(conn)

    def _idle(self, sid: str) -> None:
        conn = self.connections.get(sid)
        if conn is not None and conn.state is State.INITIALIZED and conn.session is None:
            conn.log.info("idle_socket_closed")
            self.logins.background.spawn(self.close_transport(sid))

    # -- requests --------------------------------------------------------------------------------

    def _handler(self, event: str) -> Callable[..., Awaitable[Ack | None]]:
        async def handle(sid: str, *args: Any) -> Ack | None:
            return await self._request(event, sid, args[0] if args else None)

        return handle

    async def _request(self, event: str, sid: str, payload: Any) -> Ack | None:
        structured = event == "relogin" and not isinstance(payload, str)
        conn = self.connections.get(sid)
        refused = self._admit(event, conn, payload, structured)
        if refused is not None:
            return refused
        assert conn is not None
        try:
            answer = await self._actions[event](conn, payload)
        except Exception as exc:
            return self._answered(event, conn, exc, structured)
        except BaseException as exc:  # a cancellation: the limit released, raised on
            self._answered(event, conn, exc, structured)
            raise
        return self._answered(event, conn, answer, structured)

    def _admit(self, event: str, conn: Connection | None, payload: Any, structured: bool = False) -> Ack | None:
        """The socket's limits for a request: ``None`` when it is admitted (:meth:`_answered` must
        then be told its outcome, once), else the refusal's ack (counted)."""
        try:
            if conn is None:
                raise IllegalRequest()
            conn.limits.admit(payload)
        except RequestError as exc:
            self.metrics.requests.inc(event, exc.code)
            return exc.ack(structured=structured)
        return None

    def _answered(self, event: str, conn: Connection, outcome: Ack | BaseException,
                  structured: bool = False) -> Ack | None:
        """An admitted request ended with ``outcome`` (its ack, or what it raised): the socket's limit
        released, the outcome counted, and the ack to send.  A :class:`RequestError` is its
        ``('error', reason)`` ack; any other exception is logged with its traceback and answered
        ``internal``; a cancellation (not counted) the empty ack, as python-socketio answers it."""
        conn.limits.done()
        if not isinstance(outcome, BaseException):
            self.metrics.requests.inc(event, "ok")
            return outcome
        if isinstance(outcome, RequestError):
            self.metrics.requests.inc(event, outcome.code)
            return outcome.ack(structured=structured)
        if not isinstance(outcome, Exception):
            return None
        conn.log.exception("request_failed", request=event, exc_info=outcome)
        self.metrics.requests.inc(event, "internal")
        return RequestError("internal error", "internal").ack(structured=structured)

    def _continued(self, event: str) -> Callable[[str, Any, SendAck], bool]:
        """The continued handler of ``event`` (:attr:`PortalSocketServer.continued`; in-process only):
        a request of a connected participant whose session is not moving is admitted and answered as
        :meth:`_request` does it, from the relay's continuation (:meth:`~portal.relay.Relay.handle_then`);
        anything else is left to :meth:`_request` (``False``)."""
        relay = self.relay

        def take(sid: str, payload: Any, send: SendAck) -> bool:
            conn = self.connections.get(sid)
            if conn is None or conn.state is not State.CONNECTED or conn.session is None:
                return False
            session = conn.session
            if session.moving is not None:  # waits for the move: the coroutine path
                return False
            refused = self._admit(event, conn, payload)
            if refused is not None:
                send(refused)
                return True
            relay.handle_then(session, event, payload, lambda outcome: send(self._answered(event, conn, outcome)))
            return True

        return take

    async def _unknown(self, event: str, sid: str, *args: Any) -> Ack:
        """An event no handler serves: answered at once (a client waiting for an ack would time
        out), counted under one label whatever its name, and rate-limited like any request."""
        conn = self.connections.get(sid)
        error = RequestError("unknown request", "unknown_request")
        if conn is not None:
            try:
                conn.limits.admit(args[0] if args else None)
                conn.limits.done()
            except RequestError as exc:
                error = exc
        self.metrics.requests.inc("(unknown)", error.code)
        return error.ack()

    def _in_session(self, action: Action) -> Action:
        """``action`` needs a participant: before one is bound, hold the request (§6 of protocol.md)."""

        async def guarded(conn: Connection, payload: Any) -> Ack:
            if conn.state is State.CONNECTED and conn.session is not None:
                return await action(conn, payload)
            if conn.state is State.INITIALIZED or conn.relogging:
                return await self._early(conn, action, payload)
            raise IllegalRequest()

        return guarded

    async def _early(self, conn: Connection, action: Action, payload: Any) -> Ack:
        request = conn.hold_early(action, payload)
        try:
            return await asyncio.wait_for(asyncio.shield(request.reply), self.settings.early_request_window)
        except TimeoutError:
            if not (conn.relogging or conn.state is State.CONNECTED):
                if request in conn.early:
                    conn.early.remove(request)
                if not request.reply.done():
                    request.reply.set_result(IllegalRequest().ack())
            return await request.reply

    def _relayer(self, event: str) -> Action:
        async def relay(conn: Connection, payload: Any) -> Ack:
            assert conn.session is not None
            return await self.relay.handle(conn.session, event, payload)

        return relay

    async def _ack(self, conn: Connection, payload: Any) -> Ack:
        session = conn.session
        assert session is not None
        request = parse(payload, AckRequest)
        self.acks.note(session, min(request.seq, session.last_seq))
        return ok()

    # -- HTTP ------------------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, request: web.Request) -> web.Response:
        readiness = self.readiness()
        return web.json_response(readiness.as_json(), status=readiness.status_code)
