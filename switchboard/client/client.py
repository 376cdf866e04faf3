"""The Switchboard conference client: login, requests, events, reconnection with exact replay."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, overload

from .acks import AckBatcher
from .connection import Connection
from .errors import ClientError, ConnectionLost, ProtocolError, RequestTimeout, SessionClosed, TokenApiUnavailable
from .events import Event, EventHandler, EventHub
from .failover import FailoverPlan, jittered
from .logs import ClientLog
from .settings import ClientSettings
from .tokens import TicketInfo, mint_token, portal_url, refresh_delay, ticket_info

__all__ = ["Client", "ClientState", "SDK_TYPE", "SDK_VERSION", "PROTOCOL_VERSION", "RELAYED_REQUESTS"]


#: What the client announces in ``login`` as ``userAgent.sdk``.
SDK_TYPE = "Python"
SDK_VERSION = "1.0"
#: The OWT client–portal protocol spoken.
PROTOCOL_VERSION = "1.2"
#: Requests relayed to the room's controller; with the extension each gets a ``requestId``.
RELAYED_REQUESTS = frozenset(
    {"text", "publish", "unpublish", "subscribe", "unsubscribe", "stream-control", "subscription-control", "soac"}
)

#: Relogin (and login) refusals worth another attempt (the portal could not reach the controller in time).
_TRANSIENT_RELOGIN_ERRORS = frozenset({"timeout", "unavailable", "service unavailable"})

#: How many skipped seqs the client remembers to tell a late event from a duplicate.
_SKIPPED_KEPT = 1024

ClientState = Literal["new", "connecting", "ready", "reconnecting", "closed"]


class Client:
    """A participant in a Switchboard (or OWT) conference, over Socket.IO.

    Most code starts with :meth:`join`, which gets a token when needed, connects and logs in::

        client = await Client.join("http://127.0.0.1:3000", room="demo", user="bot", role="presenter")
        await client.send_text("all", "hello")
        event = await client.next_event("text", timeout=5)
        await client.leave()

    The client keeps its session alive on its own: when the transport is lost it reconnects (a new
    Socket.IO connection for each attempt) and sends ``relogin`` with its reconnection ticket before
    anything else; with the switchboard extension (the default) it also sends the highest ``seq`` it
    has seen, applies the replayed events in order and skips any it had already received. Requests
    made during an outage wait for the relogin. The ticket is refreshed before it expires, and seen
    events are acknowledged in batches.

    Events (:class:`~switchboard.client.Event`): the server's ``participant``, ``text``, ``stream``,
    ``progress``, ``drop``, and the client's ``disconnected`` (transport lost, reconnecting),
    ``reconnected`` (relogin done; ``data['replayed']`` counts the events it brought back),
    ``resync-required`` (the server could not replay what was missed; the session ends) and
    ``closed`` (the session is over; ``data['reason']``). Receive them with :meth:`on` handlers,
    ``on_event``, or :meth:`next_event`.

    :param token: a join token (standard base64 JSON with ``host`` and ``secure``).
    :param extension: announce the switchboard extension (seq, acks, exact replay, request ids).
                      ``False`` speaks plain OWT 1.2 as the JavaScript SDK does.
    :param settings: timeouts and bounds, see :class:`~switchboard.client.ClientSettings`.
    :param on_event: a handler called for every event (as ``on('*', handler)``).
    :param url: the portal URL, instead of the one the token names.
    """

    def __init__(
        self,
        token: str,
        *,
        extension: bool = True,
        settings: ClientSettings | None = None,
        on_event: EventHandler | None = None,
        url: str | None = None,
    ) -> None:
        self.token = token
        #: The portal this client connects to; assign another one (e.g. a surviving portal) and the
        #: next reconnection goes there: a ticket is valid at any portal of the cluster.
        self.url = url or portal_url(token)
        #: Where the session started (the token's portal, or ``url``): the last address tried when
        #: the current one and the :attr:`alternatives` fail.
        self.home_url = self.url
        #: Other live portals (same ISP, same region first) the portal named in its last login or
        #: relogin answer (extension only): where the client relogs in by itself when its portal
        #: refuses connections (see :class:`~switchboard.client.failover.FailoverPlan`).
        self.alternatives: list[str] = []
        self.extension = extension
        self.settings = settings or ClientSettings()
        #: The participant id (set by the login).
        self.id: str | None = None
        #: The whole ``login`` result: ``id``, ``user``, ``role``, ``permission``, ``room``, …
        self.login_result: dict[str, Any] = {}
        #: Why the session ended (``None`` while it is open).
        self.close_reason: str | None = None
        #: Relogins that succeeded.
        self.reconnections = 0
        #: Logins :meth:`join` made, each with a new token, until one reached its portal.
        self.login_attempts = 1
        #: Events skipped because their seq had already been applied (extension only; the server
        #: promises none: a count above 0 is a server fault, which tests assert).
        self.duplicates = 0
        #: Events whose seq was not the next one: seqs skipped (a gap before the event) or an event
        #: arriving after a later one (then it is skipped). The server promises none either.
        self.out_of_order = 0
        self._state: ClientState = "new"
        self._log = ClientLog()
        self._hub = EventHub(self.settings.event_backlog)
        if on_event is not None:
            self._hub.add_handler("*", on_event)
        self._conn: Connection | None = None
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._leaving = False
        self._dropped = False
        self._ticket: str | None = None
        self._ticket_info: TicketInfo | None = None
        self._ticket_changed = asyncio.Event()
        #: The secret of the relogin in progress: sent with every attempt that presents the same
        #: ticket (a retry after a lost answer), so only this client can repeat that relogin.
        self._retry_key: str | None = None
        self._last_seq: int | None = None
        #: Seqs jumped over (most recent ones): one arriving late is out of order, not a duplicate.
        self._skipped: set[int] = set()
        self._extension_active = False
        self._holding: list[Event] | None = None
        self._acks = AckBatcher(self._send_ack, interval=self.settings.ack_interval, batch=self.settings.ack_batch)
        self._reconnect_task: asyncio.Task[None] | None = None
        self._refresh_task: asyncio.Task[None] | None = None

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    async def join(
        cls,
        token_or_api_url: str | Sequence[str],
        room: str | None = None,
        user: str | None = None,
        role: str | None = None,
        *,
        preference: dict[str, Any] | None = None,
        extension: bool = True,
        on_event: EventHandler | None = None,
        settings: ClientSettings | None = None,
        url: str | None = None,
        api_headers: dict[str, str] | None = None,
    ) -> Client:
        """Connect and log in; return the logged-in client.

        :param token_or_api_url: a join token, or the URL of a token API (``http://…`` or
                                 ``https://…``), from which a token is first obtained with
                                 ``POST /token {room, user, role, preference}``, or a list of
                                 such URLs (token APIs of one cluster), asked in order, the next
                                 when one cannot be reached (:func:`~switchboard.client.mint_token`).
                                 With token APIs, a join that no token API answered, whose portal
                                 cannot be reached (one that died before the cluster noticed), or
                                 that the portal refuses for now (``timeout``, ``unavailable``: the room's controller died
                                 during the join), is tried again with a new token, up to
                                 ``settings.login_attempts`` logins in all.
        :param room: the room (needed with an API URL).
        :param user: the user name (with an API URL; default ``python-<random>``).
        :param role: the role (with an API URL; default ``presenter``).
        :param preference: ``{isp, region}`` for the portal choice (with an API URL).
        :param extension: announce the switchboard extension (see :class:`Client`).
        :param on_event: a handler for every event.
        :param settings: timeouts and bounds.
        :param url: the portal URL, instead of the one the token names.
        :param api_headers: extra headers for the token API (e.g. ``X-Service-Key``).
        :raises ClientError: when the token cannot be obtained or the login is refused (``reason``
                             is the server's message).

        Note: this method is a coroutine.
        """
        settings = settings or ClientSettings()
        if isinstance(token_or_api_url, str) and not token_or_api_url.startswith(("http://", "https://")):
            client = cls(token_or_api_url, extension=extension, settings=settings, on_event=on_event, url=url)
            await client.login()
            return client
        if room is None:
            raise ValueError("a room is needed to get a token from a token API")
        user = user or f"python-{uuid.uuid4().hex[:8]}"
        delay = settings.login_retry_delay
        for attempt in range(1, max(1, settings.login_attempts) + 1):
            try:
                token = await mint_token(
                    token_or_api_url,
                    room,
                    user,
                    role or "presenter",
                    preference=preference,
                    timeout=settings.request_timeout,
                    ssl_verify=settings.ssl_verify,
                    headers=api_headers,
                )
                client = cls(token, extension=extension, settings=settings, on_event=on_event, url=url)
                await client.login()
            except ClientError as exc:
                again = isinstance(exc, (ConnectionLost, TokenApiUnavailable)) or _is_transient(exc)
                if not again or attempt >= settings.login_attempts:
                    raise
                ClientLog(room=room, user=user).info("login_retried", attempt=attempt, error=str(exc))
                await asyncio.sleep(jittered(delay, settings.reconnection_jitter))
                delay *= 2
                continue
            client.login_attempts = attempt
            return client
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def login(self) -> dict[str, Any]:
        """Connect to the portal and log in with the token; return the login result.

        :class:`join` calls this; call it yourself only on a client built with the constructor.

        :raises ClientError: when the portal refuses the login (the session is then closed).
        :raises ConnectionLost: when the portal cannot be reached.

        Note: this method is a coroutine.
        """
        if self._state != "new":
            raise RuntimeError(f"login on a client in state {self._state!r}")
        self._state = "connecting"
        try:
            conn = await self._connect()
            self._holding = []
            result = await conn.request("login", self._login_payload(), self.settings.request_timeout)
            if not isinstance(result, dict) or not isinstance(result.get("id"), str):
                raise ProtocolError(f"login result without an id: {result!r}")
        except ClientError as exc:
            await self._finish(f"login failed: {exc}")
            await self._hub.close()
            raise
        self.login_result = result
        self.id = result["id"]
        self._log = self._log.bind(participant=self.id)
        switchboard = result.get("switchboard")
        self._extension_active = self.extension and isinstance(switchboard, dict) and bool(switchboard.get("seq"))
        if self._extension_active and isinstance(switchboard, dict):
            self._set_alternatives(switchboard.get("alternatives"))
        ticket = result.get("reconnectionTicket")
        if isinstance(ticket, str):
            self._set_ticket(ticket)
        self._state = "ready"
        self._release_holding(())
        self._ready.set()
        self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="switchboard-ticket")
        return result

    # -- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """``'new'``, ``'connecting'``, ``'ready'``, ``'reconnecting'`` or ``'closed'``."""
        return self._state

    @property
    def connected(self) -> bool:
        """Logged in on a live connection (not reconnecting, not closed)."""
        return self._state == "ready"

    @property
    def room(self) -> dict[str, Any]:
        """The login result's ``room``: ``{id, views, participants, streams}``."""
        room = self.login_result.get("room")
        return room if isinstance(room, dict) else {}

    @property
    def ticket(self) -> str | None:
        """The current reconnection ticket string (rotated by each relogin and refresh)."""
        return self._ticket

    @property
    def ticket_info(self) -> TicketInfo | None:
        """The current ticket's participant id and validity window."""
        return self._ticket_info

    @property
    def last_seq(self) -> int | None:
        """The highest event seq applied (extension only)."""
        return self._last_seq

    @property
    def extension_active(self) -> bool:
        """The portal confirmed the switchboard extension in the login result."""
        return self._extension_active

    async def wait_closed(self) -> str | None:
        """Wait until the session is over; return :attr:`close_reason`.

        Note: this method is a coroutine.
        """
        await self._closed.wait()
        return self.close_reason

    # -- events ---------------------------------------------------------------------------------

    @overload
    def on(self, name: str) -> Callable[[EventHandler], EventHandler]: ...

    @overload
    def on(self, name: str, handler: EventHandler) -> EventHandler: ...

    def on(
        self, name: str, handler: EventHandler | None = None
    ) -> EventHandler | Callable[[EventHandler], EventHandler]:
        """Register ``handler(event)`` for events named ``name`` (``'*'``: every event).

        Handlers run one at a time, in event order, on a task of their own; they may be coroutines.
        Usable as a decorator::

            @client.on("text")
            async def on_text(event):
                print(event.data["from"], event.data["message"])
        """
        if handler is None:

            def decorator(fn: EventHandler) -> EventHandler:
                self._hub.add_handler(name, fn)
                return fn

            return decorator
        self._hub.add_handler(name, handler)
        return handler

    def off(self, name: str, handler: EventHandler) -> None:
        """Unregister a handler registered with :meth:`on`."""
        self._hub.remove_handler(name, handler)

    async def next_event(self, name: str | None = None, timeout: float | None = 5.0) -> Event:
        """Take the oldest not yet taken event named ``name`` (any event when ``None``).

        Every event is kept (up to ``settings.event_backlog``) until taken, so an event that arrived
        before the call is returned at once.

        :raises TimeoutError: when none arrives within ``timeout`` seconds.

        Note: this method is a coroutine.
        """
        return await self._hub.next_event(name, timeout)

    def drain_events(self, name: str | None = None) -> list[Event]:
        """Take every event named ``name`` (all when ``None``) that has arrived and was not taken."""
        return self._hub.drain(name)

    # -- requests -------------------------------------------------------------------------------

    async def request(self, event: str, payload: Any = None, *, timeout: float | None = None) -> Any:
        """Send a request and return the ``data`` of its ``('ok', data)`` ack.

        During an outage the request waits for the relogin. With the extension, a relayed request
        (:data:`RELAYED_REQUESTS`) gets a ``requestId`` and is sent again after a relogin when its
        answer was lost with the connection; the server applies it once.

        :param timeout: seconds for the whole request, outages included (``settings.request_timeout``).
        :raises ClientError: ``('error', reason)`` from the server.
        :raises RequestTimeout: no answer in time.
        :raises ConnectionLost: the connection was lost before the answer and the request cannot be
                                sent again safely.
        :raises SessionClosed: the session is over.

        Note: this method is a coroutine.
        """
        timeout = self.settings.request_timeout if timeout is None else timeout
        if self.extension and event in RELAYED_REQUESTS and isinstance(payload, dict) and "requestId" not in payload:
            payload = {**payload, "requestId": uuid.uuid4().hex}
        retry = self.extension and isinstance(payload, dict) and "requestId" in payload
        try:
            async with asyncio.timeout(timeout):
                while True:
                    conn = await self._live_connection()
                    try:
                        return await conn.request(event, payload, timeout)
                    except ConnectionLost:
                        if not retry:
                            raise
                        self._log.debug("request_resent_after_relogin", request=event)
        except TimeoutError as exc:
            if isinstance(exc, RequestTimeout):
                raise
            raise RequestTimeout(f"no answer to {event!r} within {timeout} s") from None

    async def send_text(self, to: str, message: str) -> None:
        """Send a text message to a participant id or to ``'all'``.

        Note: this method is a coroutine.
        """
        await self.request("text", {"to": to, "message": message})

    async def publish(
        self,
        media: dict[str, Any] | None,
        *,
        attributes: dict[str, Any] | None = None,
        transport: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Publish a stream (signaling only); return ``{id, transportId}``.

        :param media: ``{tracks: [{type, mid?, source?}]}``.
        :param transport: ``{type: 'webrtc', id?}`` (default ``{type: 'webrtc'}``).

        Note: this method is a coroutine.
        """
        payload: dict[str, Any] = {"media": media, "transport": transport or {"type": "webrtc"}}
        if attributes is not None:
            payload["attributes"] = attributes
        result: dict[str, Any] = await self.request("publish", payload)
        return result

    async def unpublish(self, stream_id: str) -> None:
        """Stop publishing ``stream_id``.

        Note: this method is a coroutine.
        """
        await self.request("unpublish", {"id": stream_id})

    async def subscribe(
        self, media: dict[str, Any] | None, *, transport: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Subscribe (signaling only); return ``{id, transportId}``.

        :param media: ``{tracks: [{type, mid?, from, parameters?}]}``.

        Note: this method is a coroutine.
        """
        result: dict[str, Any] = await self.request(
            "subscribe", {"media": media, "transport": transport or {"type": "webrtc"}}
        )
        return result

    async def unsubscribe(self, subscription_id: str) -> None:
        """End the subscription ``subscription_id``.

        Note: this method is a coroutine.
        """
        await self.request("unsubscribe", {"id": subscription_id})

    async def refresh_ticket(self) -> str:
        """Ask for a new reconnection ticket now (the client also does it on its own before expiry).

        The previous ticket is revoked by the server. With the extension, :attr:`alternatives` are
        renewed too.

        Note: this method is a coroutine.
        """
        # With the extension the answer also brings fresh alternatives (an older portal answers the
        # bare ticket string all the same).
        answer = await self.request("refreshReconnectionTicket", {"alternatives": True} if self._extension_active else None)
        ticket = answer.get("ticket") if isinstance(answer, dict) else answer
        if not isinstance(ticket, str):
            raise ProtocolError(f"refreshReconnectionTicket answered {answer!r}, not a ticket")
        if isinstance(answer, dict):
            self._set_alternatives(answer.get("alternatives"))
        self._set_ticket(ticket)
        return ticket

    # -- ending ---------------------------------------------------------------------------------

    async def leave(self) -> None:
        """Log out (the participant leaves the room, its tickets die) and disconnect.

        Idempotent. When the portal cannot be reached the client still closes its side.

        Note: this method is a coroutine.
        """
        if self._state == "closed":
            await self._hub.close()
            return
        self._leaving = True
        try:
            await self.request("logout", timeout=min(self.settings.request_timeout, 5.0))
        except ClientError as exc:
            self._log.info("logout_failed", error=str(exc))
        await self._finish("left")
        await self._hub.close()

    async def close(self) -> None:
        """Disconnect without logging out: the server holds the participant for its reconnection window.

        Prefer :meth:`leave`. Idempotent.

        Note: this method is a coroutine.
        """
        await self._finish("closed by the client")
        await self._hub.close()

    async def drop_transport(self) -> None:
        """Test hook: close the websocket under Socket.IO as a network failure would.

        The server sees a transport close (not a disconnect) and holds the participant; the client
        sees the loss, reconnects and relogs in as after a real outage.

        Note: this method is a coroutine.
        """
        if self._conn is not None:
            await self._conn.drop()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.leave()

    # -- internals ------------------------------------------------------------------------------

    def _login_payload(self) -> dict[str, Any]:
        agent: dict[str, Any] = {"sdk": {"type": SDK_TYPE, "version": SDK_VERSION}}
        if self.extension:
            agent["switchboard"] = {"seq": True}
        return {"token": self.token, "userAgent": agent, "protocol": PROTOCOL_VERSION}

    def _relogin_payload(self) -> Any:
        if self.extension:
            if self._retry_key is None:
                self._retry_key = secrets.token_urlsafe(32)
            return {"ticket": self._ticket, "lastSeq": self._last_seq, "retryKey": self._retry_key}
        return self._ticket

    async def _connect(self, url: str | None = None) -> Connection:
        conn = Connection(
            url or self.url,
            on_event=self._on_wire_event,
            on_lost=self._on_connection_lost,
            ssl_verify=self.settings.ssl_verify,
        )
        self._conn = conn
        await conn.open(self.settings.connect_timeout)
        return conn

    async def _live_connection(self) -> Connection:
        while True:
            if self._state == "closed":
                raise SessionClosed(self.close_reason)
            conn = self._conn
            if self._state == "ready" and conn is not None and not conn.lost:
                return conn
            self._ready.clear()
            await self._ready.wait()

    def _set_alternatives(self, urls: Any) -> None:
        if isinstance(urls, list):
            kept = [u for u in urls if isinstance(u, str) and u.startswith(("http://", "https://"))]
            self.alternatives = kept[: max(0, self.settings.max_alternatives)]

    def _set_ticket(self, ticket: str) -> None:
        self._ticket_info = ticket_info(ticket)
        self._ticket = ticket
        self._retry_key = None  # a relogin with the new ticket is a new attempt: a new key
        self._ticket_changed.set()

    def _on_wire_event(self, conn: Connection, name: str, args: tuple[Any, ...]) -> None:
        if conn is not self._conn or self._state == "closed":
            return
        data = args[0] if args else None
        seq: int | None = None
        if self.extension and isinstance(data, dict) and isinstance(data.get("seq"), int):
            seq = data["seq"]
            data = {k: v for k, v in data.items() if k != "seq"}
        event = Event(name, data, seq)
        if self._holding is not None:
            self._holding.append(event)
        else:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if event.seq is not None:
            if self._last_seq is not None and event.seq <= self._last_seq:
                if event.seq in self._skipped:
                    self._skipped.discard(event.seq)
                    self.out_of_order += 1
                else:
                    self.duplicates += 1
                return
            if self._last_seq is not None and event.seq > self._last_seq + 1:
                self._log.warning("events_missing", first=self._last_seq + 1, last=event.seq - 1)
                self.out_of_order += 1
                self._skipped.update(range(max(self._last_seq + 1, event.seq - _SKIPPED_KEPT), event.seq))
                while len(self._skipped) > _SKIPPED_KEPT:
                    self._skipped.discard(min(self._skipped))
            self._last_seq = event.seq
            self._acks.note(event.seq)
        if event.name == "drop":
            self._dropped = True
        self._hub.publish(event)

    def _release_holding(self, replayed: Iterable[Event]) -> None:
        held, self._holding = self._holding or [], None
        for event in replayed:
            self._apply(event)
        # Live events that raced the login/relogin ack: in seq order; unsequenced ones keep arrival order.
        for event in sorted(held, key=lambda e: (e.seq is None, e.seq or 0)):
            self._apply(event)

    def _on_connection_lost(self, conn: Connection, reason: str) -> None:
        if conn is not self._conn or self._state != "ready" or self._leaving:
            return
        self._ready.clear()
        if self._dropped:
            self._reconnect_task = asyncio.get_running_loop().create_task(self._finish("dropped by the server"))
            return
        self._state = "reconnecting"
        self._log.info("connection_lost", reason=reason)
        self._hub.publish(Event("disconnected", {"reason": reason}))
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect(), name="switchboard-reconnect")

    async def _reconnect(self) -> None:
        try:
            await self._reconnect_attempts()
        except Exception as exc:  # a bug must end the session visibly, not leave it reconnecting forever
            self._log.exception("reconnection_failed")
            await self._finish(f"reconnection failed: {exc!r}")

    async def _reconnect_attempts(self) -> None:
        settings = self.settings
        plan = FailoverPlan(settings, [self.url, *self.alternatives, self.home_url])
        for attempt in range(1, settings.reconnection_attempts + 1):
            await asyncio.sleep(plan.wait())
            url = plan.url
            try:
                conn = await self._connect(url)
            except ConnectionLost as exc:
                self._log.info("reconnection_attempt_failed", attempt=attempt, error=str(exc))
                plan.unreachable()
                continue
            self._holding = []
            try:
                answer = await conn.request("relogin", self._relogin_payload(), settings.request_timeout)
                ticket, replayed, alternatives = _relogin_answer(answer)
            except (ConnectionLost, RequestTimeout) as exc:
                self._log.info("relogin_unanswered", attempt=attempt, error=str(exc))
                self._holding = None
                await conn.close()
                plan.unreachable()
                continue
            except ClientError as exc:
                self._holding = None
                if _is_transient(exc):
                    self._log.info("relogin_refused_for_now", attempt=attempt, error=str(exc))
                    await conn.close()
                    plan.busy()
                    continue
                if exc.code == "resync-required":
                    self._hub.publish(Event("resync-required", exc.reason))
                await self._finish(f"relogin refused: {exc}")
                return
            self.url = url
            self._set_alternatives(alternatives)
            self._set_ticket(ticket)
            self.reconnections += 1
            self._state = "ready"
            self._hub.publish(Event("reconnected", {"replayed": len(replayed), "attempts": attempt, "url": url}))
            self._release_holding(replayed)
            self._ready.set()
            await self._acks.flush()
            return
        await self._finish(f"reconnection failed after {settings.reconnection_attempts} attempts")

    async def _refresh_loop(self) -> None:
        settings = self.settings
        failures = 0
        while self._state != "closed":
            self._ticket_changed.clear()
            info = self._ticket_info
            delay = None
            if info is not None:
                delay = refresh_delay(
                    info, margin=settings.ticket_refresh_margin, min_delay=settings.ticket_refresh_min_delay
                )
            if delay is not None and failures:
                delay = max(delay, min(settings.ticket_refresh_min_delay * 2**failures, 30.0))
            try:
                await asyncio.wait_for(self._ticket_changed.wait(), delay)
                continue  # a new ticket (relogin, manual refresh) or the end: reschedule
            except TimeoutError:
                pass
            try:
                await self.refresh_ticket()
                failures = 0
            except SessionClosed:
                return
            except ClientError as exc:
                failures += 1
                self._log.warning("ticket_refresh_failed", error=str(exc))

    async def _send_ack(self, seq: int) -> None:
        conn = self._conn
        if self._state != "ready" or conn is None:
            raise ConnectionLost("not connected")
        await conn.emit("ack", {"seq": seq})

    async def _finish(self, reason: str) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        self.close_reason = reason
        self._ready.set()
        self._ticket_changed.set()
        current = asyncio.current_task()
        for task in (self._reconnect_task, self._refresh_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
        await self._acks.close()
        if self._conn is not None:
            await self._conn.close()
        self._hub.publish(Event("closed", {"reason": reason}))
        self._closed.set()


def _is_transient(exc: ClientError) -> bool:
    reason = exc.code if exc.code is not None else exc.reason
    return isinstance(reason, str) and reason in _TRANSIENT_RELOGIN_ERRORS


def _relogin_answer(answer: Any) -> tuple[str, list[Event], Any]:
    """The new ticket, the replayed events and the alternatives (``None``: not told) of a relogin ack
    (bare string or extension object)."""
    if isinstance(answer, str):
        return answer, [], None
    if not isinstance(answer, dict) or not isinstance(answer.get("ticket"), str):
        raise ProtocolError(f"relogin answered {answer!r}")
    replayed = []
    for message in answer.get("messages") or ():
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            raise ProtocolError(f"malformed replayed message {message!r}")
        data, seq = message.get("data"), message.get("seq")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "seq"}
        replayed.append(Event(message["event"], data, seq if isinstance(seq, int) else None, replayed=True))
    return answer["ticket"], replayed, answer.get("alternatives")
