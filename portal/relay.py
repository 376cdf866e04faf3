"""Conference requests relayed to the participant's controller (OWT protocol 1.2 events).

Each event has a route: its schema, the call of the participant's controller it becomes (a
:class:`~contracts.controller.ControllerClient` method) and its timeout.  Publish and subscribe make
the stream/subscription id (uuid4 hex) here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from contracts.controller import ControllerClient, PublishInfo, SubscribeInfo
from rpc import RpcConnectionLost, RpcError, RpcTimeout, RpcUnavailable, Transport

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

__all__ = ["Relay", "EVENTS"]

T = TypeVar("T")


def _uuid() -> str:
    return uuid.uuid4().hex


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


@dataclass(slots=True)
class Asker:
    """Who relays a request: the participant, its portal (this one) and the call's timeout."""

    participant: str
    portal: str
    timeout: float


#: One relayed request as a call of the participant's controller (made again at another controller
#: when its session moves meanwhile).
Call = Callable[[ControllerClient], Awaitable[Any]]


def _text(r: TextRequest, by: Asker) -> Call:
    return lambda c: c.text(participant=by.participant, to=r.to, message=r.message, portal=by.portal,
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


EVENTS: dict[str, Route] = {
    "text": Route(TextRequest, _text, "text_timeout"),
    "publish": Route(PublishRequest, _publish),
    "unpublish": Route(IdRequest, _unpublish),
    "subscribe": Route(SubscribeRequest, _subscribe),
    "unsubscribe": Route(IdRequest, _unsubscribe),
    "stream-control": Route(StreamControlRequest, _stream_control, "control_timeout"),
    "subscription-control": Route(SubscriptionControlRequest, _subscription_control),
    "soac": Route(SoacRequest, _soac),
}


class Relay:
    def __init__(self, transport: Transport, settings: PortalSettings, metrics: PortalMetrics, portal: str) -> None:
        self.transport = transport
        #: This portal's worker id, sent with every relayed call: the controller refuses calls for a
        #: participant from any portal but its current one (``not_current_portal``).
        self.portal = portal
        self.settings = settings
        self.metrics = metrics
        #: The tasks waiting for a call per controller (what :meth:`interrupt` cancels), and those it
        #: cancelled (a cancellation of anyone else's goes on as it is).
        self._calls: dict[str, set[asyncio.Task[Any]]] = {}
        self._interrupted: set[asyncio.Task[Any]] = set()

    async def handle(self, session: Session, event: str, payload: Any) -> Ack:
        route = EVENTS[event]
        request = parse(payload, route.schema)
        timeout: float = getattr(self.settings, route.timeout)
        call = route.build(request, Asker(session.id, self.portal, timeout))
        try:
            result = await self._call(session, event, call, request.request_id is not None, timeout)
        except RpcError as exc:
            session.log.debug("request_refused", event=event, error=exc.code)
            raise from_rpc(exc) from None
        return ok(_plain(result))

    def interrupt(self, controller: str) -> int:
        """``controller`` was lost: end the calls in flight to it now rather than at their timeout (each
        is made again at the controller its session moves to); how many."""
        tasks = self._calls.pop(controller, set())
        for task in tasks:
            self._interrupted.add(task)
            task.cancel()
        return len(tasks)

    async def _call(self, session: Session, event: str, call: Call, identified: bool, timeout: float) -> Any:
        """``call`` (the request ``event``) at the session's controller.  While the session moves to
        another controller, the call waits for the move (within ``timeout``); a call in flight when its
        controller was lost is made once more, with the same arguments, at the controller the session
        moved to.  A call in
        flight when the broker connection was lost is made once more too (the transport waits for
        the broker, ``rpc.outage_wait``) if it carries a request id (``identified``): the controller
        answers a request id once, so the second call cannot apply it twice."""
        try:
            return await self._call_at_controller(session, event, call, timeout)
        except RpcConnectionLost:
            if not identified:
                raise  # it may have been applied: the client decides whether to send it again
            session.log.info("request_resent", event=event, reason="broker connection lost")
            return await self._call_at_controller(session, event, call, timeout)

    async def _call_at_controller(self, session: Session, event: str, call: Call, timeout: float) -> Any:
        task = asyncio.current_task()
        assert task is not None
        for again in (False, True):
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
            if again:
                break
            session.log.info("request_redirected", event=event, lost=controller)
        raise RpcUnavailable(f"{event}: the participant's controller was lost twice")
