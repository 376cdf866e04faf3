"""Conference requests relayed to the participant's controller (OWT protocol 1.2 events).

Each event has a route: its schema, the controller method, the timeout, and how the controller's
arguments are built.  Publish and subscribe make the stream/subscription id (uuid4 hex) here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from rpc import RpcConnectionLost, RpcError, RpcTimeout, RpcUnavailable, Transport

from .errors import Ack, from_rpc, ok
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


def _uuid() -> str:
    return uuid.uuid4().hex


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


def _text(r: TextRequest) -> dict[str, Any]:
    return {"to": r.to, "message": r.message}


def _publish(r: PublishRequest) -> dict[str, Any]:
    stream_id = _uuid()
    transport = r.transport
    kind = transport.type if transport is not None else "webrtc"
    transport_id = transport.id if transport is not None and transport.id else stream_id
    info = {
        "type": kind,
        "media": _plain(r.media),
        "data": r.data,
        "attributes": r.attributes or {},
        "transport": {"type": kind, "id": transport_id},
    }
    return {"stream_id": stream_id, "transport_id": transport_id, "info": info}


def _subscribe(r: SubscribeRequest) -> dict[str, Any]:
    subscription_id = _uuid()
    transport = r.transport
    kind = transport.type if transport is not None else "webrtc"
    transport_id = transport.id if transport is not None and transport.id else subscription_id
    info = {
        "type": kind,
        "media": _plain(r.media),
        "data": _plain(r.data),
        "transport": {"type": kind, "id": transport_id},
    }
    return {"subscription_id": subscription_id, "transport_id": transport_id, "info": info}


def _unpublish(r: IdRequest) -> dict[str, Any]:
    return {"stream_id": r.id}


def _unsubscribe(r: IdRequest) -> dict[str, Any]:
    return {"subscription_id": r.id}


def _stream_control(r: StreamControlRequest) -> dict[str, Any]:
    return {"stream_id": r.id, "operation": r.operation, "data": r.data}


def _subscription_control(r: SubscriptionControlRequest) -> dict[str, Any]:
    return {"subscription_id": r.id, "operation": r.operation, "data": r.data}


def _soac(r: SoacRequest) -> dict[str, Any]:
    return {"transport_id": r.id, "signaling": msgspec.to_builtins(r.signaling)}


@dataclass(frozen=True)
class Route:
    schema: type[Any]
    method: str
    build: Callable[[Any], dict[str, Any]]
    #: Name of the :class:`PortalSettings` timeout field.
    timeout: str = "request_timeout"


EVENTS: dict[str, Route] = {
    "text": Route(TextRequest, "text", _text, "text_timeout"),
    "publish": Route(PublishRequest, "publish", _publish),
    "unpublish": Route(IdRequest, "unpublish", _unpublish),
    "subscribe": Route(SubscribeRequest, "subscribe", _subscribe),
    "unsubscribe": Route(IdRequest, "unsubscribe", _unsubscribe),
    "stream-control": Route(StreamControlRequest, "stream_control", _stream_control, "control_timeout"),
    "subscription-control": Route(SubscriptionControlRequest, "subscription_control", _subscription_control),
    "soac": Route(SoacRequest, "session_signaling", _soac),
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
        args = route.build(request)
        args["participant"] = session.id
        args["portal"] = self.portal
        if request.request_id is not None:
            args["request_id"] = request.request_id
        try:
            result = await self._call(session, route.method, args, getattr(self.settings, route.timeout))
        except RpcError as exc:
            session.log.debug("request_refused", event=event, error=exc.code)
            raise from_rpc(exc) from None
        return ok(result)

    def interrupt(self, controller: str) -> int:
        """``controller`` was lost: end the calls in flight to it now rather than at their timeout (each
        is made again at the controller its session moves to); how many."""
        tasks = self._calls.pop(controller, set())
        for task in tasks:
            self._interrupted.add(task)
            task.cancel()
        return len(tasks)

    async def _call(self, session: Session, method: str, args: dict[str, Any], timeout: float) -> Any:
        """``method`` at the session's controller.  While the session moves to another controller, the
        call waits for the move (within ``timeout``); a call in flight when its controller was lost is
        made once more, with the same arguments, at the controller the session moved to.  A call in
        flight when the broker connection was lost is made once more too (the transport waits for
        the broker, ``rpc.outage_wait``) if it carries a request id: the controller answers a request
        id once, so the second call cannot apply it twice."""
        try:
            return await self._call_at_controller(session, method, args, timeout)
        except RpcConnectionLost:
            if "request_id" not in args:
                raise  # it may have been applied: the client decides whether to send it again
            session.log.info("request_resent", method=method, reason="broker connection lost")
            return await self._call_at_controller(session, method, args, timeout)

    async def _call_at_controller(self, session: Session, method: str, args: dict[str, Any], timeout: float) -> Any:
        task = asyncio.current_task()
        assert task is not None
        for again in (False, True):
            if session.moving is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(session.moving), timeout)
                except TimeoutError:
                    raise RpcTimeout(f"{method}: the participant's controller is still moving") from None
            controller = session.controller
            calls = self._calls.setdefault(controller, set())
            calls.add(task)
            try:
                return await self.transport.call(controller, method, args, timeout=timeout)
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
            session.log.info("request_redirected", method=method, lost=controller)
        raise RpcUnavailable(f"{method}: the participant's controller was lost twice")
