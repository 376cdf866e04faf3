"""Participants coming and going: login, relogin, logout, ticket refresh, a lost socket, drop.

The races OWT has are designed out here:

- the participant is registered (``Phase.PENDING``) *before* the controller's ``join``, so a
  notification that arrives before the login ack is buffered and emitted right after it;
- after every await the socket's state is checked again: a socket that died during ``login``
  makes the portal ``leave`` (no ghost), one that died during ``relogin`` makes it ``hold`` again.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import msgspec

from background import Background
from contracts.cluster import ClusterClient
from contracts.controller import ControllerClient, JoinResult, ParticipantInit
from credentials import CredentialError, Keyring, Ticket, decode_ticket, decode_token, encode_ticket, new_id, now_ms
from rpc import RpcError, RpcNoService, RpcRemoteError, RpcTimeout, Transport
from rpc.worker import ClusterWorker

from .alternatives import Alternatives
from .connection import Connection, State
from .delivery import AckBatcher, SocketDelivery, with_seq
from .errors import (
    Ack,
    InService,
    RequestError,
    UnknownProtocol,
    from_rpc,
    from_ticket_error,
    from_token_error,
    ok,
    unsupported_protocol,
)
from .logs import EventLog
from .metrics import PortalMetrics
from .schemas import LoginRequest, ReloginRequest, parse
from .session import Notification, Phase, Session, Sessions
from .settings import PortalSettings

__all__ = ["LoginService", "PROTOCOL"]

PROTOCOL = "1.2"
ROTATION_SALT = "switchboard.ticket-rotation"
RETRY_KEY_SALT = b"switchboard.relogin-retry-key:"
_OLD_PROTOCOLS = frozenset({"1.0", "1.1"})
#: Cluster manager answers that mean "not yet": a login retries them within its budget.
_NOT_YET = frozenset({"not_ready", "no_worker_available"})
#: Controller answers to a re-attach meaning the participant has left (its client must log in again).
_SESSION_GONE = frozenset({"unknown_participant", "hold_expired", "resync_required"})

CloseSocket = Callable[[str], Coroutine[Any, Any, None]]
_T = TypeVar("_T")


class LoginService:
    def __init__(
        self,
        *,
        transport: Transport,
        settings: PortalSettings,
        keyring: Keyring,
        worker: ClusterWorker,
        sessions: Sessions,
        delivery: SocketDelivery,
        acks: AckBatcher,
        metrics: PortalMetrics,
        background: Background,
        log: EventLog,
        close_socket: CloseSocket,
        close_transport: CloseSocket | None = None,
        alternatives: Alternatives | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.keyring = keyring
        self.worker = worker
        self._manager = ClusterClient(transport, worker.settings.cluster_name)
        self.sessions = sessions
        self.delivery = delivery
        self.acks = acks
        self.metrics = metrics
        self.background = background
        self.log = log
        self.close_socket = close_socket
        #: Closes a socket taken over by a relogin, transport included.
        self.close_transport = close_transport or close_socket
        #: Other portals named to extension clients (none without it).
        self.alternatives = alternatives
        self.connections: dict[str, Connection] = {}
        #: The waits and the time of the cluster retries (default: asyncio's sleep and the loop's clock).
        self._sleep = sleep
        self._clock = clock

    @property
    def worker_id(self) -> str:
        return self.worker.worker_id

    # -- login -----------------------------------------------------------------------------------

    async def login(self, conn: Connection, payload: Any) -> Ack:
        if conn.state is not State.INITIALIZED:
            raise InService()  # the socket keeps what it has
        try:
            conn.move(State.CONNECTING)
            self.background.spawn(conn.release_early(run=False))
            request = parse(payload, LoginRequest)
            if request.protocol in _OLD_PROTOCOLS:
                raise unsupported_protocol(request.protocol)
            if request.protocol != PROTOCOL:
                raise UnknownProtocol()
            answer = await self._login(conn, request)
        except RequestError as exc:
            self.metrics.logins.inc("error", exc.code)
            self._refused(conn)
            raise
        self.metrics.logins.inc("ok", "")
        return answer

    async def _login(self, conn: Connection, request: LoginRequest) -> Ack:
        try:
            token = decode_token(request.token, self.keyring)
        except CredentialError as exc:
            raise from_token_error(exc) from None
        await self._cluster(partial(self._manager.claim, purpose="portal", task=token.code, worker_id=self.worker_id),
                            retry_for=conn)
        self.worker.tasks.add(token.code)
        if conn.state is not State.CONNECTING:
            raise RequestError("Participant early left", "early_left")
        participant = new_id()
        session = Session(
            id=participant,
            room=token.room,
            user=token.user,
            role=token.role,
            token_code=token.code,
            extension=request.wants_extension,
            origin=token.origin,
            portal_log=self.log,
        )
        self.sessions.add(session)  # before join: notifications for it are kept from now on
        ticket_id = new_id()
        joiner = ParticipantInit(id=participant, user=token.user, role=token.role, portal=self.worker_id,
                                 origin=token.origin)
        try:
            result = await self._join_room(conn, session, token.origin, joiner, ticket_id)
        except (RpcError, RequestError) as exc:
            if isinstance(exc, RpcTimeout):
                await self._leave_quietly(session)  # the join may have happened after all
            self._forget(session)
            raise from_rpc(exc) if isinstance(exc, RpcError) else exc from None
        alternatives = await self._alternatives(session, session.origin)
        if conn.state is not State.CONNECTING:
            session.log.info("login_abandoned", reason="socket closed during login")
            await self._leave_quietly(session)
            self._forget(session)
            raise RequestError("Participant early left", "early_left")
        session.ticket_id = ticket_id
        self._bind(conn, session)
        session.log.info("login", controller=session.controller, extension=session.extension)
        answer: dict[str, Any] = {
            "id": participant,
            "user": token.user,
            "role": token.role,
            "permission": {} if result.permission is None else msgspec.to_builtins(result.permission),
            "room": {"id": token.room} if result.room is None else msgspec.to_builtins(result.room),
            "reconnectionTicket": self._ticket(session),
        }
        if session.extension:
            answer["switchboard"] = {"seq": True, "alternatives": alternatives}
        self.background.spawn(self._after_login(conn, session, ()), name=f"login:{participant}")
        return ok(answer)

    # -- relogin ---------------------------------------------------------------------------------

    async def relogin(self, conn: Connection, payload: Any) -> Ack:
        if conn.state is not State.INITIALIZED:
            raise InService()  # the socket keeps what it has
        structured = not isinstance(payload, str)
        try:
            conn.move(State.CONNECTING)
            conn.relogging = True
            retry_key: str | None = None
            if structured:
                request = parse(payload, ReloginRequest)
                text, last_seq = request.ticket, request.last_seq
                if request.retry_key is not None:
                    retry_key = _retry_key_hash(request.retry_key)
            else:
                text, last_seq = payload, None
            answer = await self._relogin(conn, text, last_seq, structured, retry_key)
        except RequestError as exc:
            self.metrics.relogins.inc("error", exc.code)
            conn.relogging = False
            self._refused(conn)
            raise
        self.metrics.relogins.inc("ok", "")
        return answer

    async def _relogin(
        self, conn: Connection, text: str, last_seq: int | None, structured: bool, retry_key: str | None
    ) -> Ack:
        try:
            ticket = decode_ticket(text, self.keyring)
        except CredentialError as exc:
            raise from_ticket_error(exc) from None
        participant = ticket.participant_id
        hold = self.sessions.holds.get(participant)
        if hold is not None:
            await asyncio.shield(hold)  # this portal's hold must reach the controller first
        scheduled = await self._cluster(partial(self._manager.get_scheduled, purpose="conference", task=ticket.room))
        if scheduled is None:
            # Nobody holds the room now (its controller died, or the server restarted): any
            # controller can rebuild it from the journal — the one the scheduler picks, as for a login.
            scheduled = await self._cluster(
                partial(self._manager.schedule, purpose="conference", task=ticket.room, preference={},
                        reserve_time=self.settings.room_reserve_time),
                retry_for=conn,
            )
        session = Session(
            id=participant,
            room=ticket.room,
            controller=sys.intern(scheduled.id),
            extension=structured,
            portal_log=self.log,
        )
        old = self.sessions.get(participant)  # a relogin while its old socket here is still open
        if old is not None:
            await self.acks.flush(participant)
        self.sessions.add(session)  # notifications sent once the controller resumed are kept from now on
        new_ticket_id = self._successor(ticket)
        try:
            result = await self._controller(session).resume(
                participant=participant, ticket_id=ticket.ticket_id, new_ticket_id=new_ticket_id,
                portal=self.worker_id, last_seq=last_seq, retry_key=retry_key, room=ticket.room,
                timeout=self.settings.request_timeout,
            )
        except RpcError as exc:
            replaced = self.sessions.get(participant) is not session
            self._forget(session)
            if old is not None and old.phase is Phase.LIVE:
                if replaced:
                    self._take_over(old)  # a later relogin here has the participant: not the old socket
                else:
                    self.sessions.add(old)
                    for note in session.buffer or ():
                        await self.delivery.deliver(old, note)
            raise from_rpc(exc) from None
        session.origin = result.origin
        alternatives = await self._alternatives(session, session.origin)
        if old is not None:
            self._take_over(old)
        if self.sessions.get(participant) is not session:
            # A later relogin here (a retry of this one on another socket, the same ticket) took the
            # participant while this answer was on the way: that socket has it, this one gets nothing.
            session.log.info("relogin_taken_over")
            raise RequestError("Participant is connected elsewhere", "displaced")
        session.epoch = result.epoch or 0
        if session.epoch < session.displaced_by:
            # A relogin elsewhere was accepted after this one while its answer was on the way.
            session.log.info("relogin_superseded", epoch=session.epoch, by=session.displaced_by)
            self.sessions.remove(session)
            raise RequestError("Participant is connected elsewhere", "displaced")
        session.ticket_id = new_ticket_id
        if conn.state is not State.CONNECTING:
            session.log.info("relogin_abandoned", reason="socket closed during relogin")
            self._hold(session)
            raise RequestError("Participant early left", "early_left")
        self._bind(conn, session)
        conn.relogging = False
        messages = [Notification(m.event, m.data, m.seq) for m in result.messages]
        seqs = [m.seq for m in messages if m.seq is not None]
        session.log.info("relogin", controller=session.controller, missed=len(messages), extension=structured)
        ticket_text = self._ticket(session)
        if not structured:
            session.last_seq = min(seqs) - 1 if seqs else 0
            self.background.spawn(self._after_login(conn, session, messages), name=f"relogin:{participant}")
            return ok(ticket_text)
        session.last_seq = max(seqs) if seqs else last_seq or 0
        self.background.spawn(self._after_login(conn, session, ()), name=f"relogin:{participant}")
        return ok({
            "ticket": ticket_text,
            "lastSeq": result.last_seq,
            "messages": [{"seq": m.seq, "event": m.event, "data": with_seq(m.data, m.seq)} for m in messages],
            "alternatives": alternatives,
        })

    async def _alternatives(self, session: Session, origin: object) -> list[str]:
        """Other portals for an extension client's answer (``[]`` for a plain one: it has no use for them)."""
        if not session.extension or self.alternatives is None:
            return []
        return await self.alternatives.of(origin)

    def _take_over(self, old: Session) -> None:
        """The new socket takes the participant over: the old one is closed without hold or leave."""
        self.sessions.remove(old)
        self.acks.discard(old.id)
        conn = self.connections.get(old.sid or "")
        if conn is not None and conn.session is old:
            conn.session = None
            # Not back to ``initialized``: until it is gone, the socket can neither act (``Illegal
            # request`` at once, nothing held for a relogin) nor log in again.
            conn.move(State.WAITING_FOR_RECONNECTING)
            self.background.spawn(self._evict(conn.sid))

    async def _evict(self, sid: str) -> None:
        """``drop`` first (an OWT SDK whose session another socket took over is told so — it would
        not notice a bare disconnect), then the socket and its transport are closed."""
        try:
            await self.delivery.sio.emit("drop", to=sid)
        finally:
            await self.close_transport(sid)

    def displace(self, participant: str, epoch: int) -> None:
        """The controller accepted resume number ``epoch`` of ``participant`` through another portal:
        a socket of it here from before that is closed (no hold, no leave); a relogin still in flight
        here remembers it, and is refused if its own resume turns out older."""
        session = self.sessions.get(participant)
        if session is None:
            return
        if session.phase is Phase.PENDING:
            session.displaced_by = max(session.displaced_by, epoch)
            return
        if session.epoch >= epoch:
            return
        session.log.info("displaced", epoch=epoch)
        self._take_over(session)

    # -- a partition healed ----------------------------------------------------------------------

    async def rehome(self, room: str, sessions: list[Session], lost: str, slots: asyncio.Semaphore,
                     *, to: str | None = None) -> None:
        """Move this portal's ``sessions`` of ``room``, whose controller was lost, to the controller the
        cluster schedules now for the room (one ``schedule`` for them all; ``to`` when given, even
        ``lost`` itself), which rebuilds the room from the journal (:meth:`reattach` there, at most
        ``slots`` at once).  The clients notice nothing.
        Tried ``failover_attempts`` times for the sessions not moved yet; then (or when the new
        controller does not know the participant: no journal, or its hold ran out) a client is dropped
        and logs in again."""
        attempts, interval = self.settings.failover_attempts, self.settings.failover_interval
        waiting = sessions
        for attempt in range(attempts):
            if attempt:
                await self._sleep(interval)
            waiting = [s for s in waiting if self.sessions.get(s.id) is s and s.live]
            if not waiting:
                return
            if to is not None:
                controller = to
            else:
                try:
                    scheduled = await self._cluster(partial(self._manager.schedule, purpose="conference", task=room,
                                                            preference={}, reserve_time=self.settings.room_reserve_time))
                except RequestError as exc:
                    self.log.info("failover_schedule_failed", room=room, attempt=attempt + 1, error=exc.code)
                    continue
                controller = scheduled.id
                if controller == lost:
                    continue  # the manager has not repealed the lost controller's rooms yet
            moved = await asyncio.gather(*(self._reattach_to(s, sys.intern(controller), slots) for s in waiting))
            for session, done in zip(waiting, moved):
                if done:
                    session.log.info("failed_over", lost=lost, controller=controller, attempt=attempt + 1)
            waiting = [s for s, done in zip(waiting, moved) if not done]
            if not waiting:
                return
        for session in waiting:
            session.log.warning("failover_failed", lost=lost, attempts=attempts)
            if self.sessions.get(session.id) is session and session.live:
                await self.drop(session, "controller lost")
            session.end_move()

    async def _reattach_to(self, session: Session, controller: str, slots: asyncio.Semaphore) -> bool:
        """:meth:`reattach` at ``controller``; a session moved (or gone) lets its requests go on."""
        async with slots:
            if self.sessions.get(session.id) is not session or not session.live:
                session.end_move()
                return True
            session.controller = controller
            try:
                moved = await self.reattach(session)
            except Exception as exc:  # noqa: BLE001 - one session's failure must not strand its room's others
                session.log.warning("reattach_error", controller=controller, error=repr(exc))
                moved = False
        if moved:
            session.end_move()
        return moved

    async def reattach(self, session: Session) -> bool:
        """Re-attach a socket this portal still has after the cluster declared the portal lost (a
        partition: the controller holds the participant although its socket is here).

        ``resume`` with this portal's id, the session's current ticket as both old and new ticket
        (it is kept, so the client's ticket stays valid) and the highest seq emitted on the socket;
        the notifications it missed are emitted, in order, before any that arrive meanwhile.  A
        participant that is gone (held too long, or a resync) is dropped: its client must log in
        again.  One taken by another socket in the meantime (its ticket moved on) is closed here as
        a displaced one.  Any other failure leaves the session as it was (a later recovery retries):
        the only outcome that returns ``False``.
        """
        async with session.lock:
            if self.sessions.get(session.id) is not session or not session.live:
                return True
            session.phase = Phase.PENDING  # notifications arriving during the resume wait for its replay
            try:
                result = await self._controller(session).resume(
                    participant=session.id, ticket_id=session.ticket_id, new_ticket_id=session.ticket_id,
                    portal=self.worker_id, last_seq=session.last_seq, room=session.room,
                    timeout=self.settings.request_timeout,
                )
            except RpcError as exc:
                await self.delivery.flush(session)  # back to live, with whatever was buffered
                code = exc.code if isinstance(exc, RpcRemoteError) else ""
                if self.sessions.get(session.id) is not session:
                    return True
                if code in _SESSION_GONE:
                    session.log.info("reattach_refused", error=code)
                    await self.drop(session, f"session lost: {code}")
                elif code == "ticket_mismatch":
                    session.log.info("reattach_refused", error=code)
                    self._take_over(session)
                else:
                    session.log.warning("reattach_failed", error=exc.code)
                    return False
                return True
            session.epoch = session.epoch if result.epoch is None else result.epoch
            if session.phase is Phase.ENDED:
                # The socket closed during the resume; its hold may have reached the controller first.
                session.log.info("reattach_abandoned", reason="socket closed during the re-attach")
                self._hold(session)
                return True
            messages = [Notification(m.event, m.data, m.seq) for m in result.messages]
            await self.delivery.flush(session, messages)
            session.log.info("reattached", missed=len(messages), epoch=session.epoch)
            if session.displaced_by > session.epoch and self.sessions.get(session.id) is session:
                self._take_over(session)  # a relogin elsewhere was accepted after this resume
            return True

    # -- after the ack ---------------------------------------------------------------------------

    async def _after_login(self, conn: Connection, session: Session, replay: Any) -> None:
        """Runs once the login/relogin ack is queued: missed and buffered events, then early requests."""
        await self.delivery.flush(session, replay)
        await conn.release_early(run=True)

    def _refused(self, conn: Connection) -> None:
        if conn.state is State.CONNECTING:
            conn.move(State.INITIALIZED)
        self.background.spawn(conn.release_early(run=False))
        self.background.spawn(self.close_socket(conn.sid))

    # -- logout, refresh -------------------------------------------------------------------------

    async def logout(self, conn: Connection) -> Ack:
        session = conn.require_session()
        conn.session = None
        conn.move(State.INITIALIZED)
        session.log.info("logout")
        self._forget(session)
        await self.acks.flush(session.id)
        await self._leave_quietly(session)
        self.background.spawn(self.close_socket(conn.sid))
        return ok()

    async def refresh(self, conn: Connection, payload: Any = None) -> Ack:
        """A new ticket: a bare string (OWT), or for an extension session that asks with an object
        payload, ``{ticket, alternatives}`` (the alternatives as fresh as this refresh)."""
        session = conn.require_session()
        async with session.lock:
            new_ticket_id = new_id()
            try:
                await self._controller(session).refresh_ticket(
                    participant=session.id, ticket_id=session.ticket_id, new_ticket_id=new_ticket_id,
                    portal=self.worker_id, timeout=self.settings.request_timeout,
                )
            except RpcError as exc:
                raise from_rpc(exc) from None
            session.ticket_id = new_ticket_id
            ticket = self._ticket(session)
        if session.extension and isinstance(payload, dict):
            return ok({"ticket": ticket, "alternatives": await self._alternatives(session, session.origin)})
        return ok(ticket)

    # -- sockets going away ----------------------------------------------------------------------

    def socket_lost(self, conn: Connection) -> None:
        """The socket closed (network, client disconnect, or us): hold its participant, if any."""
        conn.cancel_idle_timer()
        session = conn.session
        if conn.state is State.CONNECTED and session is not None and session.phase is not Phase.ENDED:
            conn.move(State.WAITING_FOR_RECONNECTING)
            self._hold(session)
        if not conn.closed:
            conn.move(State.CLOSED)
        conn.session = None
        self.background.spawn(conn.release_early(run=False))

    async def drop(self, session: Session, reason: str) -> None:
        """Emit ``drop`` and close the socket; the participant cannot relogin."""
        self._forget(session)
        session.log.info("drop", reason=reason)
        conn = self.connections.get(session.sid or "")
        if conn is not None and conn.session is session:
            conn.session = None
            conn.move(State.INITIALIZED)
            try:
                await self.delivery.sio.emit("drop", to=conn.sid)
            finally:
                await self.close_socket(conn.sid)

    def _hold(self, session: Session) -> None:
        self._forget(session)
        task = self.background.spawn(self._send_hold(session), name=f"hold:{session.id}")
        self.sessions.holds[session.id] = task
        task.add_done_callback(lambda _: self._hold_done(session.id, task))

    def _hold_done(self, participant: str, task: asyncio.Task[Any]) -> None:
        if self.sessions.holds.get(participant) is task:
            del self.sessions.holds[participant]

    async def _send_hold(self, session: Session) -> None:
        await self.acks.flush(session.id)
        try:
            await self._controller(session).hold(participant=session.id, portal=self.worker_id,
                                                 timeout=self.settings.request_timeout)
            session.log.info("hold")
        except RpcError as exc:
            session.log.warning("hold_failed", error=exc.code, message=exc.message)

    async def _leave_quietly(self, session: Session) -> None:
        try:
            await self._controller(session).leave(participant=session.id, portal=self.worker_id,
                                                  timeout=self.settings.request_timeout)
        except RpcError as exc:
            session.log.info("leave_failed", error=exc.code)

    # -- helpers ---------------------------------------------------------------------------------

    def _controller(self, session: Session) -> ControllerClient:
        """The controller of ``session``'s room (the one it is at now)."""
        return ControllerClient(self.transport, session.controller)

    def _bind(self, conn: Connection, session: Session) -> None:
        session.sid = conn.sid
        conn.session = session
        conn.move(State.CONNECTED)
        conn.cancel_idle_timer()
        self.metrics.participants.set(len(self.sessions))

    def _forget(self, session: Session) -> None:
        """The participant is no longer served here (left, held, dropped)."""
        self.sessions.remove(session)
        self.metrics.participants.set(len(self.sessions))
        if session.token_code and session.token_code in self.worker.tasks:
            # Unscheduled, not laid down: a used token must not linger as a claimable reservation.
            self.background.spawn(self.worker.end_task(session.token_code))

    def _successor(self, ticket: Ticket) -> str:
        """The ticket id a relogin with ``ticket`` rotates to: derived (keyed) rather than random, so
        a relogin retried with the same ticket after its ack was lost repeats the controller's last
        replacement (accepted) instead of being refused as revoked.  Only a holder of ``ticket`` can
        compute it, and it is dead as soon as the participant rotates again."""
        signature = self.keyring.sign(f"{ticket.participant_id}:{ticket.ticket_id}".encode(), ROTATION_SALT)
        return hashlib.sha256(signature.encode()).hexdigest()[:24]

    def _ticket(self, session: Session) -> str:
        now = now_ms()
        ticket = Ticket(
            participant_id=session.id,
            ticket_id=session.ticket_id,
            room=session.room,
            not_before=now,
            not_after=now + int(self.settings.reconnection_ticket_lifetime * 1000),
        )
        return encode_ticket(ticket, self.keyring)

    async def _join_room(
        self, conn: Connection, session: Session, origin: Any, joiner: ParticipantInit, ticket_id: str
    ) -> JoinResult:
        """Schedule the room's controller and ``join`` there.  A controller nobody serves any more
        (it died and the cluster manager has not yet moved its rooms: the join reached no one) is
        scheduled and asked again every ``cluster_retry_interval`` within ``cluster_retry_budget``,
        while the socket is still logging in: the room is then at its new controller."""
        clock = self._clock or asyncio.get_running_loop().time
        deadline = clock() + self.settings.cluster_retry_budget
        while True:
            controller = await self._cluster(
                partial(self._manager.schedule, purpose="conference", task=session.room, preference=origin,
                        reserve_time=self.settings.room_reserve_time),
                retry_for=conn,
            )
            session.controller = sys.intern(controller.id)  # one copy for all its sessions
            try:
                return await self._controller(session).join(room=session.room, participant=joiner, ticket_id=ticket_id,
                                                            extension=session.extension,
                                                            timeout=self.settings.join_timeout)
            except RpcNoService:
                if conn.state is not State.CONNECTING or clock() + self.settings.cluster_retry_interval > deadline:
                    raise
                self.log.info("join_rescheduled", room=session.room, lost=session.controller)
            await self._sleep(self.settings.cluster_retry_interval)

    async def _cluster(self, call: partial[Coroutine[Any, Any, _T]], *, retry_for: Connection | None = None) -> _T:
        """Call the cluster manager: ``call`` is a :class:`~contracts.cluster.ClusterClient` method with
        its arguments, called with ``timeout=cluster_timeout``.  With ``retry_for`` (a socket logging in), answers that mean it
        cannot serve *yet* (``not_ready``, ``no_worker_available``: a cluster still starting, a
        controller restarting) are retried within ``cluster_retry_budget`` while that socket is still
        logging in, so a join works the first time."""
        clock = self._clock or asyncio.get_running_loop().time
        deadline = clock() + self.settings.cluster_retry_budget
        while True:
            try:
                return await call(timeout=self.settings.cluster_timeout)
            except RpcError as exc:
                not_yet = isinstance(exc, RpcRemoteError) and exc.code in _NOT_YET
                still_waiting = retry_for is not None and retry_for.state is State.CONNECTING
                if not (not_yet and still_waiting) or clock() + self.settings.cluster_retry_interval > deadline:
                    raise from_rpc(exc) from None
                self.log.debug("cluster_not_ready", method=call.func.__name__, error=exc.code)
            await self._sleep(self.settings.cluster_retry_interval)


def _retry_key_hash(key: str) -> str:
    """What the controller keeps of a relogin's ``retryKey`` (it never sees the key itself)."""
    return hashlib.sha256(RETRY_KEY_SALT + key.encode()).hexdigest()
