"""The RabbitMQ transport (aio-pika, robust connection, JSON bodies).

Layout on the broker:

- a call or cast is published to the default exchange with the target's name as routing key,
  ``mandatory`` so that a target nobody serves comes back at once as ``RpcUnavailable``;
- a service is a queue named after it; several processes consuming it share its messages
  (competing consumers); a worker id is just a service only one process serves;
- replies go to the caller's own reply queue, matched by AMQP ``correlation_id``/``reply_to``;
- fault events go through one topic exchange, each subscriber with its own queue;
- departures (:meth:`AmqpTransport.watch_departures`): the broker's own event exchange
  (``amq.rabbitmq.event``, plugin ``rabbitmq_event_exchange``) announces ``queue.deleted`` when a
  served name's auto-delete queue goes with its last consumer's connection (not when it goes with
  its broker node: its server reconnects to another node and serves again); link changes
  (:meth:`~rpc.base.Transport.watch_link`) follow the robust connection's close and reconnect callbacks.

Every queue is declared on a robust channel, so after a broker restart the connection comes back
by itself and re-declares queues, bindings and consumers.  ``rpc.broker_url`` may name the nodes of a
RabbitMQ cluster (comma-separated): the connection goes to the first that answers and, when it is
lost, to the next one (:class:`~rpc.brokers.FailoverConnection`), where the same restoration happens.  While the connection is down, calls
fail at once with ``RpcUnavailable``; a connection loss fails every call in flight the same way,
and so does a serving process that closes its transport while handling a call (it answers
``service_gone`` before it disconnects, and the caller raises ``RpcUnavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
import yarl
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    DeliveryMode,
    ExchangeType,
)

from background import Background

from .brokers import FailoverConnection, broker_urls, connect_first, redacted
from .base import (
    _REQUEST_ID,
    DepartureListener,
    EventHandler,
    ServiceHandle,
    Subscription,
    Transport,
    deadline_passed,
    dispatch,
    rpc_methods,
)
from .errors import INTERNAL, SERVICE_GONE, Declined, RpcConnectionLost, RpcNoService, RpcRemoteError, RpcUnavailable
from .logs import AmqpLog
from .messages import ErrorBody, Reply, Request, decode_event, decode_reply, decode_request, encode
from .messages import Event as EventMessage
from .settings import RpcSettings

__all__ = ["AmqpTransport"]

log = AmqpLog()

#: The broker's own event exchange (plugin ``rabbitmq_event_exchange``).
BROKER_EVENTS_EXCHANGE = "amq.rabbitmq.event"
#: How often a call waiting out a broker outage looks at the connection, seconds.
_LINK_POLL = 0.05
#: First pause before publishing again a message the broker refused (nack), seconds; it doubles up to
#: ``_NACK_PAUSE_MAX`` (all within the call's own bounded wait, ``rpc.outage_wait``).
_NACK_PAUSE = 0.05
_NACK_PAUSE_MAX = 0.4


class _Backoff:
    """The pauses between attempts to publish again (or to serve a queue the broker refused):
    ``_NACK_PAUSE`` doubling to ``_NACK_PAUSE_MAX``, while ``budget`` seconds from its making leave
    room for the next one."""

    def __init__(self, budget: float) -> None:
        self._deadline = time.monotonic() + budget
        self._pause = _NACK_PAUSE

    def left(self) -> float:
        return self._deadline - time.monotonic()

    def allows(self) -> bool:
        """Whether another pause (and attempt) fits in the budget."""
        return self.left() >= self._pause

    async def pause(self) -> None:
        await asyncio.sleep(self._pause)
        self._pause = min(self._pause * 2, _NACK_PAUSE_MAX)
_CONTENT_TYPE = "application/json"
_BROKER_ERRORS = (
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.AMQPError,
    ConnectionError,
    OSError,
    RuntimeError,
)


class _AmqpService(ServiceHandle):
    def __init__(self, transport: AmqpTransport, name: str, queue: AbstractQueue, tag: str) -> None:
        self.transport = transport
        self.name = name
        self.queue = queue
        self.tag = tag

    async def stop(self) -> None:
        if self not in self.transport._services:
            return
        self.transport._services.discard(self)
        try:
            await self.queue.cancel(self.tag)
        except _BROKER_ERRORS + (asyncio.TimeoutError,):
            log.debug("cancel_failed", service=self.name, reason="connection_down")


class _AmqpSubscription(Subscription):
    def __init__(self, transport: AmqpTransport, queue: AbstractQueue, tag: str) -> None:
        self.transport = transport
        self.queue = queue
        self.tag = tag

    async def cancel(self) -> None:
        if self not in self.transport._subscriptions:
            return
        self.transport._subscriptions.discard(self)
        try:
            await self.queue.cancel(self.tag)
            await self.queue.delete(if_unused=False, if_empty=False)
        except _BROKER_ERRORS + (asyncio.TimeoutError,):
            log.debug("cancel_failed", subscription="events", reason="connection_down")


class AmqpTransport(Transport):
    """A :class:`~rpc.base.Transport` over RabbitMQ."""

    def __init__(self, node_id: str, settings: RpcSettings) -> None:
        super().__init__(node_id, call_timeout=settings.call_timeout)
        if not settings.broker_url:
            raise ValueError("AmqpTransport needs rpc.broker_url")
        self.settings = settings
        #: The broker nodes (one, or the nodes of a RabbitMQ cluster), tried in turn.
        self.broker_urls = broker_urls(settings.broker_url)
        self._conn: FailoverConnection | None = None
        self._publish_ch: AbstractRobustChannel | None = None
        self._reply_ch: AbstractRobustChannel | None = None
        self._consume_ch: AbstractRobustChannel | None = None
        self._events_ex: aio_pika.abc.AbstractExchange | None = None
        #: The reply queue, and its name: a new one for every connection (see ``_on_connection_lost``).
        self._reply_queue: aio_pika.Queue | None = None
        self._reply_queue_name = self._new_reply_queue_name()
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._ids = itertools.count()
        self._handler_tasks: set[asyncio.Task[Any]] = set()
        #: How many times the robust connection came back by itself after a loss.
        self.reconnects = 0
        #: Messages the broker refused (nack) and that were published again on a new channel.
        self.nacks = 0
        #: Messages nobody served (unroutable), each time it was published.
        self.unroutable = 0
        #: Replies published again because their channel was being restored.
        self.replies_resent = 0
        self._renew_lock = asyncio.Lock()
        #: Refused publishing channels, each closed once what was in flight on it had its time.
        self._retired = Background(log)
        self._started = False
        self._start_lock = asyncio.Lock()
        #: Set while the connection is up with its channels, queues and consumers restored.
        self._restored = asyncio.Event()
        #: When the connection last came back (monotonic), ``None`` before any loss.
        self._restored_at: float | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, open the channels, consume replies, declare the events exchange; idempotent.

        A start that fails closes what it opened (the connection, and with it its channels and
        reply queue) and raises ``RpcUnavailable``; a closed transport, or one whose start failed,
        cannot be started again."""
        async with self._start_lock:
            if self._closed:
                raise RuntimeError(f"the transport of {self.node_id} was closed; make a new one")
            if self._started:
                return
            try:
                await self._connect()
            except BaseException as exc:
                await self.close()
                if isinstance(exc, (*_BROKER_ERRORS, asyncio.TimeoutError)):
                    raise RpcUnavailable(f"cannot connect to the broker: {exc!r}") from exc
                raise
            self._started = True
            self._restored.set()

    async def _connect(self) -> None:
        # The first node that answers; after that the connection moves to the next one by itself.
        def refused(url: str, exc: BaseException) -> None:
            log.warning("broker_node_refused", node=self.node_id, broker=redacted(url), error=repr(exc))

        self._conn = await connect_first(
            self.broker_urls, timeout=max(self.settings.publish_timeout, 2.0),
            errors=(*_BROKER_ERRORS, asyncio.TimeoutError), on_refused=refused,
            reconnect_interval=self.settings.reconnect_interval, heartbeat=self.settings.heartbeat,
            client_properties={"connection_name": self.node_id},
        )
        assert self._conn is not None
        self._conn.close_callbacks.add(self._on_connection_lost)
        self._conn.reconnect_callbacks.add(self._on_reconnected)
        self._publish_ch = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
        self._reply_ch = await self._conn.channel(publisher_confirms=False)
        self._consume_ch = await self._conn.channel(publisher_confirms=False)
        await self._consume_ch.set_qos(prefetch_count=self.settings.prefetch)
        reply_queue = await self._consume_ch.declare_queue(self._reply_queue_name, durable=False, auto_delete=True)
        await reply_queue.consume(self._on_reply, no_ack=True)
        assert isinstance(reply_queue, aio_pika.Queue)  # renamed on a loss: aio-pika's own class has the name
        self._reply_queue = reply_queue
        self._events_ex = await self._publish_ch.declare_exchange(
            self.settings.events_exchange, ExchangeType.TOPIC, durable=False, auto_delete=False
        )

    async def _shutdown(self) -> None:
        self._fail_pending(RpcUnavailable("transport closed"))
        await self._retired.stop()
        current = asyncio.current_task()
        handlers = [task for task in self._handler_tasks if task is not current]
        for task in handlers:
            task.cancel()
        if handlers:
            # Each cancelled handler tells its caller that this service went away (see
            # ``_handle_request``) before the connection closes.
            await asyncio.wait(handlers, timeout=self.settings.publish_timeout)
        if self._conn is not None:
            try:
                await self._conn.close()
            except _BROKER_ERRORS + (asyncio.TimeoutError,):
                log.debug("broker_close_failed", node=self.node_id, exc_info=True)

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected.is_set() and not self._closed

    def _new_reply_queue_name(self) -> str:
        return f"reply.{self.node_id}.{uuid.uuid4().hex[:12]}"

    def _on_connection_lost(self, _sender: Any, exc: BaseException | None = None) -> None:
        self._restored.clear()
        # The reply queue comes back under a new name: the lost one may still be on the broker, on the
        # node that was lost (a cluster deletes a lost node's queues some time after it noticed the
        # loss), where declaring it again is refused and consuming it gets nothing.  Every call in
        # flight fails below, so no reply is owed to the old name.
        self._reply_queue_name = self._new_reply_queue_name()
        if self._reply_queue is not None:
            self._reply_queue.name = self._reply_queue_name  # what aio-pika declares and consumes on restoring
        if self._pending:
            log.warning("broker_connection_lost", node=self.node_id, calls_failed=len(self._pending))
        self._fail_pending(RpcConnectionLost(f"broker connection lost: {exc or 'closed'}"))
        if not self._closed:
            self._link_changed(False)

    def _on_reconnected(self, _sender: Any) -> None:
        self._restored.set()  # aio-pika calls this once every channel, queue and consumer is back
        self._restored_at = time.monotonic()
        self.reconnects += 1
        where = self._conn.address if self._conn is not None else "?"
        log.info("broker_connection_restored", node=self.node_id, broker=where)
        self._link_changed(True)

    def _fail_pending(self, error: RpcUnavailable) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    async def _await_link(self, limit: float) -> float:
        """Return at once while connected; while the broker connection is lost, or back but not
        restored yet, wait up to ``min(outage_wait, limit)`` seconds for it to come back, else (with
        no wait allowed: at once) ``RpcUnavailable``.  Returns how long it waited."""
        wait = min(self.settings.outage_wait, limit)
        if not self._started or self._closed or wait <= 0 or self.connected:
            self._require_connection()
            if self.connected and not self._restored.is_set():
                if wait <= 0:
                    # Connected again but not restored yet: our reply queue may not be declared and
                    # consumed, and a reply to it would be dropped (its caller left to its timeout).
                    raise RpcUnavailable("broker connection is being restored")
                return await self._await_restored(wait)
            return 0.0
        started = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                while not self.connected:
                    await asyncio.sleep(_LINK_POLL)
        except TimeoutError:
            raise RpcUnavailable(f"broker unavailable (waited {wait:g} s for it)") from None
        waited = time.monotonic() - started
        return waited + await self._await_restored(wait - waited)

    async def _await_restored(self, bound: float) -> float:
        """aio-pika flags the connection up before it restores channels, queues and consumers (our
        reply queue among them) and says so last (``_on_reconnected``): wait for that, at most
        ``bound`` seconds (what is left of the call's bounded wait), then go on regardless.  A call
        published before its reply queue is back would get no answer: after a broker node of a cluster
        is lost, restoring may take seconds (a queue of the lost node is refused until the cluster has
        deleted it, and the connection tries the next node)."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(bound, 0.0)):
                await self._restored.wait()
        except TimeoutError:
            pass
        return time.monotonic() - started

    def _require_connection(self) -> None:
        if not self._started:
            raise RpcUnavailable("transport not started")
        if not self.connected:
            raise RpcUnavailable("broker unavailable")

    # -- serving ---------------------------------------------------------------------------------

    async def serve(self, service: str, handler: object, *, single_active: bool = False) -> ServiceHandle:
        methods = rpc_methods(handler)
        self._require_connection()
        assert self._consume_ch is not None and self._conn is not None

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._handler_tasks.add(task)
            try:
                await self._handle_request(service, methods, message)
            finally:
                if task is not None:
                    self._handler_tasks.discard(task)

        # A broker under load may refuse a declare for a while (a quorum queue's INTERNAL_ERROR closes
        # the whole connection, which comes back by itself): tried again for up to ``outage_wait``.
        backoff = _Backoff(self.settings.outage_wait)
        while True:
            try:
                queue, tag = await self._consume(service, on_message, single_active)
                break
            except _BROKER_ERRORS as exc:
                if not backoff.allows():
                    raise RpcUnavailable(f"cannot serve {service}: {exc}") from exc
                log.warning("serve_refused", service=service, error=repr(exc), detail="trying again")
                await backoff.pause()
                await self._await_link(max(0.0, backoff.left()))
        entry = _AmqpService(self, service, queue, tag)
        self._services.add(entry)
        return entry

    async def _consume(self, service: str, on_message: Callable[[AbstractIncomingMessage], Awaitable[None]],
                       single_active: bool) -> tuple[AbstractQueue, str]:
        """Declare ``service``'s queue and consume it (one attempt)."""
        assert self._consume_ch is not None and self._conn is not None
        if not single_active:
            queue = await self._consume_ch.declare_queue(service, durable=False, auto_delete=True)
            return queue, await queue.consume(on_message, no_ack=False)
        # A quorum queue: Debian's RabbitMQ 3.10.8 crashes a classic single-active-consumer queue on a
        # cancel with a backlog.  Its own channel, for a small prefetch: what a frozen server took is
        # what the next one gets again.  A failed attempt closes it (not left for aio-pika to restore).
        channel = await self._conn.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=self.settings.single_active_prefetch)
            queue = await channel.declare_queue(
                service, durable=True, arguments={"x-queue-type": "quorum", "x-single-active-consumer": True})
            return queue, await queue.consume(on_message, no_ack=False)
        except BaseException:
            with contextlib.suppress(Exception):
                await channel.close()
            raise

    async def _handle_request(
        self, service: str, methods: dict[str, Any], message: AbstractIncomingMessage
    ) -> None:
        declined = False
        try:
            try:
                request = decode_request(message.body)
            except Exception as exc:  # msgspec.ValidationError / DecodeError
                log.warning("malformed_request_dropped", service=service, error=str(exc))
                return
            if deadline_passed(request):
                log.info("request_expired", service=service, method=request.method, sender=request.sender)
                return
            if message.correlation_id:
                _REQUEST_ID.set(f"{request.sender}/{message.correlation_id}")
            try:
                reply = await dispatch(service, methods, request, self.on_handled, self.on_failed)
            except Declined as exc:
                log.info("request_declined", service=service, method=request.method, sender=request.sender,
                         reason=exc.message)
                declined = True
                return
            except asyncio.CancelledError:
                if self._closed and message.reply_to:
                    gone = ErrorBody(SERVICE_GONE, f"{service} went away during {request.method}")
                    await self._send_reply(message, Reply(error=gone))
                raise
            if message.reply_to:
                await self._send_reply(message, reply)
        finally:
            try:
                if declined:
                    await message.nack(requeue=True)
                else:
                    await message.ack()
            except _BROKER_ERRORS + (asyncio.TimeoutError,):
                log.debug("ack_failed", reason="connection_down", detail="the broker will redeliver")

    async def _send_reply(self, message: AbstractIncomingMessage, reply: Reply) -> None:
        assert self._reply_ch is not None
        try:
            body = encode(reply)
        except (TypeError, ValueError) as exc:
            log.error("reply_not_serialisable", error=str(exc))
            body = encode(Reply(error=ErrorBody(INTERNAL, "reply is not serialisable")))
        # A reply whose channel is being restored (the broker came back, or the connection moved to
        # another node, while the request was handled) is published again once it is back, with the
        # nack back-off, for up to ``reply_wait``: dropped, its caller would wait out its whole timeout
        # for nothing.
        backoff = _Backoff(self.settings.reply_wait)
        while True:
            channel = self._reply_ch
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type=_CONTENT_TYPE,
                        correlation_id=message.correlation_id,
                        delivery_mode=DeliveryMode.NOT_PERSISTENT,
                    ),
                    routing_key=message.reply_to or "",
                    mandatory=False,
                )
                return
            except _BROKER_ERRORS as exc:
                if self._closed or not backoff.allows():
                    log.warning("reply_lost", reply_to=message.reply_to, error=str(exc))
                    return
                self.replies_resent += 1
                log.info("reply_resent", reply_to=message.reply_to, error=str(exc))
            await self._await_restored(backoff.left())
            await backoff.pause()

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is None or future.done():
            log.debug("late_reply_dropped", correlation_id=message.correlation_id)
            return
        try:
            future.set_result(decode_reply(message.body))
        except Exception as exc:
            future.set_exception(RpcRemoteError("bad_reply", f"malformed reply: {exc}"))

    # -- calling ---------------------------------------------------------------------------------

    async def _publish(self, message: aio_pika.Message, routing_key: str, what: str, budget: float) -> None:
        """Publish with confirm to the default exchange, ``mandatory``: a target nobody serves raises
        ``RpcNoService``.  A message the broker refuses (nack) is published again, after a short pause
        and on a new channel, for up to ``budget`` seconds: right after a broker node of a cluster is
        lost, a channel that first publishes to a quorum queue whose leader was on that node keeps
        having its messages refused (RabbitMQ 3.10, measured: > 30 s) while a new channel opened once
        the queue has elected its new leader (~0.3 s) is served."""
        backoff = _Backoff(budget)
        while True:
            channel = self._publish_ch
            assert channel is not None
            try:
                async with asyncio.timeout(self.settings.publish_timeout):
                    await channel.default_exchange.publish(message, routing_key=routing_key, mandatory=True)
                return
            except aio_pika.exceptions.PublishError:
                # Right after this connection came back (a broker restart, a move to another node),
                # the servers may not have declared their queues again yet: within ``outage_wait`` of
                # it, an unroutable message (delivered to nobody: safe to send again) waits for them.
                self.unroutable += 1
                if not self._just_restored() or not backoff.allows():
                    raise RpcNoService(f"no service {routing_key!r}") from None
                await backoff.pause()
                continue
            except aio_pika.exceptions.DeliveryError:
                if not backoff.allows():
                    raise RpcUnavailable(f"{what}: broker did not take the message (nacked)") from None
            except asyncio.TimeoutError:
                raise RpcUnavailable(f"{what}: broker did not take the message (TimeoutError)") from None
            except _BROKER_ERRORS as exc:
                raise RpcUnavailable(f"{what}: broker unavailable ({type(exc).__name__})") from None
            self.nacks += 1
            log.info("publish_refused", what=what, detail="publishing it again on a new channel")
            await self._renew_publish_channel(channel)
            await backoff.pause()

    def _just_restored(self) -> bool:
        """Whether the connection came back less than ``outage_wait`` seconds ago."""
        restored_at = self._restored_at
        return restored_at is not None and time.monotonic() - restored_at < self.settings.outage_wait

    async def _renew_publish_channel(self, refused: AbstractRobustChannel) -> None:
        """Replace the publishing channel ``refused`` (unless another caller did already); the old one
        is closed once what is in flight on it has had ``publish_timeout`` to be confirmed."""
        async with self._renew_lock:
            if self._publish_ch is not refused or self._conn is None or self._closed:
                return
            try:
                async with asyncio.timeout(self.settings.publish_timeout):
                    channel = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
                    events = await channel.declare_exchange(
                        self.settings.events_exchange, ExchangeType.TOPIC, durable=False, auto_delete=False)
            except (*_BROKER_ERRORS, asyncio.TimeoutError) as exc:
                log.debug("publish_channel_not_renewed", node=self.node_id, error=repr(exc))
                return
            self._publish_ch, self._events_ex = channel, events
        self._retired.spawn(self._retire(refused), "retire-publish-channel")

    async def _retire(self, channel: AbstractRobustChannel) -> None:
        await asyncio.sleep(self.settings.publish_timeout)
        try:
            await channel.close()
        except (*_BROKER_ERRORS, asyncio.TimeoutError):
            log.debug("publish_channel_close_failed", node=self.node_id, exc_info=True)

    async def _ready(self, limit: float) -> float:
        return await self._await_link(limit)

    async def _exchange(self, target: str, request: Request, timeout: float) -> Reply | None:
        started = time.monotonic()
        correlation_id = f"{next(self._ids):x}"
        body = encode(request)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self._publish(
                aio_pika.Message(
                    body,
                    content_type=_CONTENT_TYPE,
                    correlation_id=correlation_id,
                    reply_to=self._reply_queue_name,
                    expiration=max(timeout, 0.001),
                    delivery_mode=DeliveryMode.NOT_PERSISTENT,
                ),
                target,
                f"{target}.{request.method}",
                min(self.settings.outage_wait, timeout),
            )
            remaining = timeout - (time.monotonic() - started)
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
                # arrives as the reply does, and the cancelled caller (a worker's loop) runs on.
                async with asyncio.timeout(max(remaining, 0.0)):
                    return await future
            except TimeoutError:
                return None
        finally:
            self._pending.pop(correlation_id, None)

    async def _post(self, target: str, request: Request) -> None:
        await self._publish(
            aio_pika.Message(encode(request), content_type=_CONTENT_TYPE, delivery_mode=DeliveryMode.NOT_PERSISTENT),
            target,
            f"cast {target}.{request.method}",
            self.settings.outage_wait,
        )

    # -- departures ------------------------------------------------------------------------------

    async def watch_departures(self, listener: DepartureListener) -> bool:
        """Through the broker's event exchange (plugin ``rabbitmq_event_exchange``): a service queue
        is auto-deleted when its last consumer goes, and the broker announces ``queue.deleted``
        within milliseconds of the consumer's connection closing.  ``False`` when the plugin is off."""
        self._require_connection()
        assert self._conn is not None and self._consume_ch is not None
        probe = await self._conn.channel(publisher_confirms=False)
        try:
            exchange = await probe.declare_exchange(BROKER_EVENTS_EXCHANGE, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            log.warning("broker_events_missing", exchange=BROKER_EVENTS_EXCHANGE,
                        detail="enable the plugin rabbitmq_event_exchange: dead workers are noticed by keepalives only")
            return False
        except _BROKER_ERRORS as exc:
            raise RpcUnavailable(f"cannot watch departures: {exc}") from exc
        finally:
            if not probe.is_closed:
                await probe.close()
        vhost = yarl.URL(self.broker_urls[0]).path[1:] or "/"

        async def on_deleted(message: AbstractIncomingMessage) -> None:
            headers = message.headers
            if "user_who_performed_action" not in headers:
                # Deleted with its broker node (a node of the cluster went down; RabbitMQ 3.10 names the
                # actor ``user`` then, ``user_who_performed_action`` when a queue goes with its last
                # consumer's connection): its server went with the node's connections and serves again
                # from another node; one that died too is left to the keepalive sweep.
                return
            name, where = headers.get("name"), headers.get("vhost")
            if isinstance(name, bytes):
                name = name.decode()
            if isinstance(where, bytes):
                where = where.decode()
            if isinstance(name, str) and where == vhost:
                listener(name)

        try:
            queue = await self._consume_ch.declare_queue(
                f"departures.{self.node_id}.{uuid.uuid4().hex[:12]}", durable=False, auto_delete=True
            )
            await queue.bind(exchange.name, routing_key="queue.deleted")
            await queue.consume(on_deleted, no_ack=True)
        except _BROKER_ERRORS as exc:
            raise RpcUnavailable(f"cannot watch departures: {exc}") from exc
        return True

    # -- fault events ----------------------------------------------------------------------------

    async def publish_event(self, topic: str, payload: Any) -> None:
        await self._await_link(self.settings.outage_wait)
        assert self._events_ex is not None
        body = encode(EventMessage(topic=topic, payload=payload, sender=self.node_id))
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                # Not mandatory: an event nobody listens to is not an error.
                await self._events_ex.publish(
                    aio_pika.Message(body, content_type=_CONTENT_TYPE), routing_key=topic, mandatory=False
                )
        except (*_BROKER_ERRORS, asyncio.TimeoutError, aio_pika.exceptions.DeliveryError) as exc:
            raise RpcUnavailable(f"event {topic}: broker unavailable ({type(exc).__name__})") from None

    async def subscribe_events(self, pattern: str, handler: EventHandler) -> Subscription:
        self._require_connection()
        assert self._consume_ch is not None and self._events_ex is not None

        async def on_event(message: AbstractIncomingMessage) -> None:
            try:
                event = decode_event(message.body)
            except Exception as exc:
                log.warning("malformed_event_dropped", error=str(exc))
                return
            try:
                await handler(event.topic, event.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event_handler_failed", topic=event.topic, node=self.node_id)

        try:
            queue = await self._consume_ch.declare_queue(
                f"events.{self.node_id}.{uuid.uuid4().hex[:12]}", durable=False, auto_delete=True
            )
            await queue.bind(self._events_ex, routing_key=pattern)
            tag = await queue.consume(on_event, no_ack=True)
        except _BROKER_ERRORS as exc:
            raise RpcUnavailable(f"cannot subscribe to {pattern}: {exc}") from exc
        sub = _AmqpSubscription(self, queue, tag)
        self._subscriptions.add(sub)
        return sub
