"""Conference requests relayed to the participant's controller (OWT protocol 1.2 events).

Each event has a route: its schema, the call of the participant's controller it becomes (a
:class:`~contracts.controller.ControllerClient` method) and its timeout.  Publish and subscribe make
the stream/subscription id (uuid4 hex) here.

A ``text`` may also be relayed without a coroutine (:meth:`Relay.handle_then`) when the transport is
in-process: its controller call is made with a continuation, and the request is answered from there.
Both ways share every rule: the request is parsed and built by its route, a call in flight when its
controller is lost is made once more at the controller its session moves to (:meth:`Relay.interrupt`
ends both kinds; a continued one goes on as :meth:`Relay.handle` would, from its second attempt), and
its outcome becomes the same ack (:func:`_acked`, :meth:`Relay._refused`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from contracts.controller import ControllerClient, PublishInfo, SubscribeInfo, TextThen
from rpc import LocalTransport, RpcConnectionLost, RpcError, RpcTimeout, RpcUnavailable, Transport

from .errors import Ack, RequestError, from_rpc, ok
from .metrics import PortalMetrics
from .schemas import (
    IdRequest,
    PublishRequest,
    SoacRequest,
    StreamControlRequest,
    SubscribeRequest,
    SubscriptionControlRequest,
    TextRequest,
    parse,
)
from .session import Session
from .settings import PortalSettings

__all__ = ["Relay", "EVENTS", "Answer"]

#: Told the outcome of a request relayed with :meth:`Relay.handle_then`, once: its ack, the
#: :class:`RequestError` it was refused with, the unexpected exception it failed with, or
#: :class:`asyncio.CancelledError` if it was cancelled (the portal stopping).
Answer = Callable[[Ack | BaseException], None]

T = TypeVar("T")


def _uuid() -> str:
    return uuid.uuid4().hex


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


def _acked(result: Any) -> Ack:
    """The ack of a relayed request the controller answered with ``result``."""
    return ok(msgspec.to_builtins(result) if isinstance(result, msgspec.Struct) else result)


@dataclass(slots=True)
class Asker:
    """Who relays a request: the participant, its portal (this one) and the call's timeout."""

    participant: str
    portal: str
    timeout: float


#: One relayed request as a call of the participant's controller (made again at another controller
#: when its session moves meanwhile).
Call = Callable[[ControllerClient], Awaitable[Any]]


#: One relayed request as a call of the participant's controller with a continuation (in-process only):
#: ``(request, asker, controller, then)``.
CallThen = Callable[[Any, Asker, ControllerClient, TextThen], None]


def _text(r: TextRequest, by: Asker) -> Call:
    return lambda c: c.text(participant=by.participant, to=r.to, message=r.message, portal=by.portal,
                            request_id=r.request_id, timeout=by.timeout)


def _text_then(r: TextRequest, by: Asker, c: ControllerClient, then: TextThen) -> None:
    c.text_then(participant=by.participant, to=r.to, message=r.message, portal=by.portal, then=then,
                request_id=r.request_id, timeout=by.timeout)


def _info(kind: type[T], info: dict[str, Any]) -> T:
    """The media part of a request as the controller takes it (``bad_arguments`` when it does not fit)."""
    try:
        return msgspec.convert(info, kind)
    except msgspec.ValidationError as exc:
        raise RequestError(f"invalid {kind.__name__}: {exc}", "bad_arguments") from None


def _publish(r: PublishRequest, by: Asker) -> Call:
    stream_id = _uuid()
    transport = r.transport
    kind = transport.type if transport is not None else "webrtc"
    transport_id = transport.id if transport is not None and transport.id else stream_id
    info = _info(PublishInfo, {"media": _plain(r.media), "data": r.data, "attributes": r.attributes or {},
                               "transport": {"type": kind, "id": transport_id}})
    return lambda c: c.publish(participant=by.participant, stream_id=stream_id, transport_id=transport_id, info=info,
                               portal=by.portal, request_id=r.request_id, timeout=by.timeout)


def _subscribe(r: SubscribeRequest, by: Asker) -> Call:
    subscription_id = _uuid()
    transport = r.transport
    kind = transport.type if transport is not None else "webrtc"
    transport_id = transport.id if transport is not None and transport.id else subscription_id
    info = _info(SubscribeInfo, {"media": _plain(r.media), "data": _plain(r.data),
                                 "transport": {"type": kind, "id": transport_id}})
    return lambda c: c.subscribe(participant=by.participant, subscription_id=subscription_id,
                                 transport_id=transport_id, info=info, portal=by.portal, request_id=r.request_id,
                                 timeout=by.timeout)


def _unpublish(r: IdRequest, by: Asker) -> Call:
    return lambda c: c.unpublish(participant=by.participant, stream_id=r.id, portal=by.portal,
                                 request_id=r.request_id, timeout=by.timeout)


def _unsubscribe(r: IdRequest, by: Asker) -> Call:
    return lambda c: c.unsubscribe(participant=by.participant, subscription_id=r.id, portal=by.portal,
                                   request_id=r.request_id, timeout=by.timeout)


def _stream_control(r: StreamControlRequest, by: Asker) -> Call:
    return lambda c: c.stream_control(participant=by.participant, stream_id=r.id, operation=r.operation,
                                      portal=by.portal, data=r.data, request_id=r.request_id, timeout=by.timeout)


def _subscription_control(r: SubscriptionControlRequest, by: Asker) -> Call:
    return lambda c: c.subscription_control(participant=by.participant, subscription_id=r.id,
                                            operation=r.operation, portal=by.portal, data=r.data,
                                            request_id=r.request_id, timeout=by.timeout)


def _soac(r: SoacRequest, by: Asker) -> Call:
    return lambda c: c.session_signaling(participant=by.participant, transport_id=r.id,
                                         signaling=msgspec.to_builtins(r.signaling), portal=by.portal,
                                         request_id=r.request_id, timeout=by.timeout)


@dataclass(frozen=True)
class Route:
    schema: type[Any]
    #: The controller call the request becomes.
    build: Callable[[Any, Asker], Call]
    #: Name of the :class:`PortalSettings` timeout field.
    timeout: str = "request_timeout"
    #: The call made with a continuation, for :meth:`Relay.handle_then` (``None``: always a coroutine).
    call_then: CallThen | None = None


EVENTS: dict[str, Route] = {
    "text": Route(TextRequest, _text, "text_timeout", _text_then),
    "publish": Route(PublishRequest, _publish),
    "unpublish": Route(IdRequest, _unpublish),
    "subscribe": Route(SubscribeRequest, _subscribe),
    "unsubscribe": Route(IdRequest, _unsubscribe),
    "stream-control": Route(StreamControlRequest, _stream_control, "control_timeout"),
    "subscription-control": Route(SubscriptionControlRequest, _subscription_control),
    "soac": Route(SoacRequest, _soac),
}


class _Continued:
    """A request relayed with a continuation (:meth:`Relay.handle_then`), in flight at ``controller``:
    answered from the call's continuation (:meth:`done`), unless :meth:`Relay.interrupt` redirects
    it first (its controller was lost): then the call is made again as :meth:`Relay.handle` makes its
    second attempt, and what the first call answers later is dropped."""

    __slots__ = ("relay", "session", "event", "route", "request", "asker", "answer", "controller", "redirected")

    def __init__(self, relay: Relay, session: Session, event: str, route: Route, request: Any, asker: Asker,
                 answer: Answer) -> None:
        self.relay = relay
        self.session = session
        self.event = event
        self.route = route
        self.request = request
        self.asker = asker
        self.answer = answer
        self.controller = session.controller
        self.redirected = False

    def done(self, result: Any, error: Exception | None) -> None:
        """The call's continuation."""
        if self.redirected:
            return
        calls = self.relay._calls.get(self.controller)
        if calls is not None:
            calls.discard(self)
        if error is None:
            self.answer(_acked(result))
        elif isinstance(error, RpcError):
            self.answer(self.relay._refused(self.session, self.event, error))
        else:
            self.answer(error)  # unexpected: answered ``internal``, as the coroutine's failure

    def cancel(self) -> None:
        """:meth:`Relay.interrupt`: the controller was lost."""
        self.redirected = True
        self.relay._redirect(self)


class Relay:
    def __init__(self, transport: Transport, settings: PortalSettings, metrics: PortalMetrics, portal: str) -> None:
        self.transport = transport
        #: This portal's worker id, sent with every relayed call: the controller refuses calls for a
        #: participant from any portal but its current one (``not_current_portal``).
        self.portal = portal
        self.settings = settings
        self.metrics = metrics
        #: The calls in flight per controller (what :meth:`interrupt` ends): the tasks waiting for
        #: one, and the requests relayed with a continuation; the tasks :meth:`interrupt` cancelled
        #: (a cancellation of anyone else's goes on as it is).
        self._calls: dict[str, set[asyncio.Task[Any] | _Continued]] = {}
        self._interrupted: set[asyncio.Task[Any]] = set()
        #: The tasks making again the continued requests :meth:`interrupt` ended.
        self._redirects: set[asyncio.Task[None]] = set()
        #: A client per controller for :meth:`handle_then` (not one made per text), dropped when the
        #: controller is lost (:meth:`interrupt`).
        self._clients: dict[str, ControllerClient] = {}
        #: Whether requests can be relayed with a continuation (:meth:`handle_then`): in-process only.
        self.in_process = isinstance(transport, LocalTransport)

    def _prepare(self, session: Session, event: str, payload: Any) -> tuple[Route, Any, Asker]:
        """The request ``event`` parsed by its route (:class:`RequestError` if it does not fit), and who asks."""
        route = EVENTS[event]
        request = parse(payload, route.schema)
        return route, request, Asker(session.id, self.portal, getattr(self.settings, route.timeout))

    async def handle(self, session: Session, event: str, payload: Any) -> Ack:
        route, request, asker = self._prepare(session, event, payload)
        return await self._relayed(session, event, route.build(request, asker), request.request_id is not None,
                                   asker.timeout)

    async def _relayed(self, session: Session, event: str, call: Call, identified: bool, timeout: float,
                       lost: str | None = None) -> Ack:
        """``call`` made (:meth:`_call`) and its outcome as the request's ack."""
        try:
            result = await self._call(session, event, call, identified, timeout, lost)
        except RpcError as exc:
            raise self._refused(session, event, exc) from None
        return _acked(result)

    @staticmethod
    def _refused(session: Session, event: str, exc: RpcError) -> RequestError:
        """What the client is told of a call that failed with ``exc``."""
        session.log.debug("request_refused", event=event, error=exc.code)
        return from_rpc(exc)

    def handle_then(self, session: Session, event: str, payload: Any, answer: Answer) -> None:
        """:meth:`handle` without a coroutine, for an event whose route has a ``call_then``, over the
        in-process transport (:attr:`in_process`), while the session is not moving (the caller
        checks): ``answer`` is told the outcome once, from the controller call's continuation (at once
        if the controller answered without suspending), or from the redirect if the controller is
        lost meanwhile."""
        try:
            route, request, asker = self._prepare(session, event, payload)
            continued = _Continued(self, session, event, route, request, asker, answer)
        except Exception as exc:  # noqa: BLE001 - a refusal (RequestError) or a failure: answered as one
            answer(exc)
            return
        controller = continued.controller
        calls = self._calls.get(controller)
        if calls is None:
            calls = self._calls[controller] = set()
        calls.add(continued)
        try:
            assert route.call_then is not None
            client = self._clients.get(controller)
            if client is None:
                client = self._clients[controller] = ControllerClient(self.transport, controller)
            route.call_then(request, asker, client, continued.done)
        except Exception as exc:  # noqa: BLE001 - nothing was called (arguments that cannot be sent)
            if continued not in calls:  # answered already: the failure came after, from the answer
                raise
            calls.discard(continued)
            answer(exc)

    def _redirect(self, continued: _Continued) -> None:
        """Make ``continued`` again, in a task, as :meth:`handle`'s second attempt."""
        task = asyncio.get_running_loop().create_task(self._make_again(continued), name=f"redirect:{continued.event}")
        self._redirects.add(task)
        task.add_done_callback(self._redirects.discard)

    async def _make_again(self, continued: _Continued) -> None:
        request, asker = continued.request, continued.asker
        try:
            ack = await self._relayed(continued.session, continued.event, continued.route.build(request, asker),
                                      request.request_id is not None, asker.timeout, lost=continued.controller)
        except BaseException as exc:
            continued.answer(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            continued.answer(ack)

    def interrupt(self, controller: str) -> int:
        """``controller`` was lost: end the calls in flight to it now rather than at their timeout (each
        is made again at the controller its session moves to); how many."""
        self._clients.pop(controller, None)
        calls = self._calls.pop(controller, set())
        for call in calls:
            if isinstance(call, asyncio.Task):
                self._interrupted.add(call)
            call.cancel()
        return len(calls)

    async def _call(self, session: Session, event: str, call: Call, identified: bool, timeout: float,
                    lost: str | None = None) -> Any:
        """``call`` (the request ``event``) at the session's controller.  While the session moves to
        another controller, the call waits for the move (within ``timeout``); a call in flight when its
        controller was lost is made once more, with the same arguments, at the controller the session
        moved to (``lost``: that first controller was lost already, this is the second attempt).  A
        call in flight when the broker connection was lost is made once more too (the transport waits
        for the broker, ``rpc.outage_wait``) if it carries a request id (``identified``): the
        controller answers a request id once, so the second call cannot apply it twice."""
        try:
            return await self._call_at_controller(session, event, call, timeout, lost)
        except RpcConnectionLost:
            if not identified:
                raise  # it may have been applied: the client decides whether to send it again
            session.log.info("request_resent", event=event, reason="broker connection lost")
            return await self._call_at_controller(session, event, call, timeout)

    async def _call_at_controller(self, session: Session, event: str, call: Call, timeout: float,
                                  lost: str | None = None) -> Any:
        task = asyncio.current_task()
        assert task is not None
        while True:
            if lost is not None:
                session.log.info("request_redirected", event=event, lost=lost)
            if session.moving is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(session.moving), timeout)
                except TimeoutError:
                    raise RpcTimeout(f"{event}: the participant's controller is still moving") from None
            controller = session.controller
            calls = self._calls.setdefault(controller, set())
            calls.add(task)
            try:
                return await call(ControllerClient(self.transport, controller))
            except asyncio.CancelledError:
                if task not in self._interrupted:
                    raise
                self._interrupted.discard(task)
                if task.uncancel() > 0:
                    raise  # also cancelled by someone else (the socket closed…)
            finally:
                calls.discard(task)
            if lost is not None:
                raise RpcUnavailable(f"{event}: the participant's controller was lost twice")
            lost = controller
