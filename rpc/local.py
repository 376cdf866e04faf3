"""The in-process transport: every component of the embedded server shares one :class:`LocalBroker`.

It keeps the semantics of the RabbitMQ transport: calls time out, unknown targets and closed
transports give ``RpcUnavailable``, handler errors arrive as ``RpcRemoteError``, several handlers
of one service share its calls round-robin, events use topic patterns.  With ``roundtrip=True``
every payload is JSON-encoded and decoded on the way, so nothing passes that could not cross a wire.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import math
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, NamedTuple, TypeVar

from .base import (
    DepartureListener,
    EventHandler,
    Later,
    ServiceHandle,
    Subscription,
    Transport,
    dispatch,
    later_reply,
    reply_result,
    resumable,
    rpc_methods,
)
from .errors import INTERNAL, SERVICE_GONE, Declined, RpcError, RpcNoService, RpcTimeout, RpcUnavailable
from .logs import LocalLog
from .messages import ErrorBody, Reply, Request, roundtrip
from .topics import topic_matches

__all__ = ["LocalBroker", "LocalTransport", "Continuation", "carry_on"]

log = LocalLog()

_T = TypeVar("_T")

Methods = dict[str, Callable[..., Awaitable[Any]]]
#: Told how a call made with :meth:`LocalTransport.call_then` ended: ``(result, None)`` or ``(None, error)``.
Continuation = Callable[[Any, RpcError | None], None]

#: Calls of :meth:`LocalTransport.call_then` with the same timeout begun within this many seconds
#: (at most a quarter of the timeout) share one deadline, up to that much later than their own.
DEADLINE_SLACK = 0.05


class _LocalService(ServiceHandle):
    def __init__(self, transport: LocalTransport, name: str, methods: Methods) -> None:
        self.transport = transport
        self.name = name
        self.methods = methods
        #: The methods marked ``resumable``: resumed outside any task by :meth:`LocalTransport.call_then`.
        self.resumable = frozenset(name for name, method in methods.items() if resumable(method))

    async def stop(self) -> None:
        self.transport.broker._remove_service(self)
        self.transport._services.discard(self)


class _LocalSubscription(Subscription):
    def __init__(self, transport: LocalTransport, pattern: str, handler: EventHandler) -> None:
        self.transport = transport
        self.pattern = pattern
        self.handler = handler

    async def cancel(self) -> None:
        self.transport.broker._subscriptions.discard(self)
        self.transport._subscriptions.discard(self)


class LocalBroker:
    """The in-process meeting point of every :class:`LocalTransport` of one embedded cluster."""

    def __init__(self, *, roundtrip: bool = False) -> None:
        self.roundtrip = roundtrip
        self._services: dict[str, list[_LocalService]] = {}
        self._rr: dict[str, itertools.count[int]] = {}
        #: Services whose calls all go to their first server still serving.
        self._single_active: set[str] = set()
        self._subscriptions: set[_LocalSubscription] = set()
        self._departure_listeners: list[tuple[LocalTransport, DepartureListener]] = []

    def transport(self, node_id: str, *, call_timeout: float = 2.0) -> LocalTransport:
        return LocalTransport(self, node_id, call_timeout=call_timeout)

    def _add_service(self, service: _LocalService) -> None:
        self._services.setdefault(service.name, []).append(service)
        self._rr.setdefault(service.name, itertools.count())

    def _remove_service(self, service: _LocalService) -> None:
        entries = self._services.get(service.name)
        if entries and service in entries:
            entries.remove(service)
            if not entries:
                del self._services[service.name]
                self._departed(service.name)

    def _departed(self, name: str) -> None:
        for transport, listener in list(self._departure_listeners):
            if transport._closed:
                self._departure_listeners.remove((transport, listener))
                continue
            try:
                listener(name)
            except Exception:
                log.exception("departure_listener_failed", node=transport.node_id)

    def _pick(self, target: str) -> _LocalService:
        entries = self._services.get(target)
        if not entries:
            raise RpcNoService(f"no service {target!r}")
        if target in self._single_active:
            return entries[0]
        return entries[next(self._rr[target]) % len(entries)]

    def _wire(self, value: Any) -> Any:
        return roundtrip(value) if self.roundtrip else value


class LocalTransport(Transport):
    """One component's handle on a :class:`LocalBroker`."""

    def __init__(self, broker: LocalBroker, node_id: str, *, call_timeout: float = 2.0) -> None:
        super().__init__(node_id, call_timeout=call_timeout)
        self.broker = broker
        self._inflight: set[asyncio.Task[Any]] = set()
        #: Handlers of this side's services suspended with their caller waiting (no task of their own).
        self._parked: set[_Parked] = set()
        #: The deadlines of this side's calls waiting on a parked handler, earliest first, and the
        #: one timer that wakes them (armed for the earliest; calls that ended are dropped lazily).
        self._deadlines: list[tuple[float, int, _Parked]] = []
        self._sweep_at = math.inf
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._numbering = itertools.count()
        self._waiting = 0
        #: Handlers of this side's services resumed from their futures' callbacks (``call_then``).
        self._chained: set[_Chained] = set()
        #: The open shared deadline of this side's ``call_then`` calls, per timeout (see :class:`_Deadline`).
        self._open_deadlines: dict[float, _Deadline] = {}

    async def _shutdown(self) -> None:
        for task in list(self._inflight):
            task.cancel()
        for parked in list(self._parked):
            parked.hand_over(cancel=True)
        for chained in list(self._chained):
            chained.hand_over(cancel=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RpcUnavailable(f"transport of {self.node_id} is closed")

    async def serve(self, service: str, handler: object, *, single_active: bool = False) -> ServiceHandle:
        self._check_open()
        entry = _LocalService(self, service, rpc_methods(handler))
        if single_active:
            self.broker._single_active.add(service)
        self.broker._add_service(entry)
        self._services.add(entry)
        return entry

    async def watch_departures(self, listener: DepartureListener) -> bool:
        self._check_open()
        self.broker._departure_listeners.append((self, listener))
        return True

    def _own(self, task: asyncio.Task[_T]) -> asyncio.Task[_T]:
        """``task`` runs a handler of this side (a service's or a subscription's): cancelled when this
        transport closes."""
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    def _begin(self, entry: _LocalService, request: Request, later: bool = False) -> Reply | _Suspended:
        """Run the handler at once, in a copy of the caller's context, up to its first suspension:
        its reply if it finished without one (most do: an in-process call then costs no task and no
        loop turn), else where it stopped.  ``later``: a :class:`~rpc.base.Later` the method returns
        is the reply's result as it is."""
        coro = self._serve_one(entry, request, later)
        context = contextvars.copy_context()
        try:
            return _Suspended(coro, context, context.run(coro.send, None))
        except StopIteration as done:
            reply: Reply = done.value
            return reply

    def _start(self, entry: _LocalService, request: Request) -> Reply | asyncio.Task[Reply]:
        """:meth:`_begin`; a handler that suspends goes on as a task of the serving side, exactly
        where it stopped."""
        begun = self._begin(entry, request)
        return begun if isinstance(begun, Reply) else _go_on(entry.transport, begun)

    async def _serve_one(self, entry: _LocalService, request: Request, later: bool = False) -> Reply:
        try:
            reply = await dispatch(entry.name, entry.methods, request, entry.transport.on_handled,
                                   entry.transport.on_failed, later)
        except Declined as exc:
            return Reply(error=ErrorBody(SERVICE_GONE, f"{entry.name} declined {request.method}: {exc.message}"))
        if reply.error is None and self.broker.roundtrip and type(reply.result) is not Later:
            reply = self._wired(entry.name, request.method, reply)
        return reply

    def _wired(self, service: str, method: str, reply: Reply) -> Reply:
        """A successful ``reply`` as it would come over a wire (with ``roundtrip``: encoded and decoded)."""
        try:
            return Reply(result=roundtrip(reply.result))
        except (TypeError, ValueError) as exc:
            log.error("reply_not_serialisable", service=service, method=method, error=str(exc))
            return Reply(error=ErrorBody(INTERNAL, "reply is not serialisable"))

    def call_then(self, target: str, method: str, args: dict[str, Any] | None, then: Continuation,
                  timeout: float | None = None) -> None:
        """:meth:`call` without a coroutine of the caller's: ``then(result, None)``, or ``then(None,
        error)`` with the :class:`~rpc.errors.RpcError` :meth:`call` would raise, once the call ends;
        exactly once, unless this raises (arguments that cannot be sent: nothing was called then).

        The handler runs at once, in a copy of the caller's context, as for :meth:`call`; ``then`` is
        called before this returns when it finishes without suspending.  A handler that answers with
        a :class:`~rpc.base.Later` is answered from its future's completion callback.  A handler
        marked ``resumable`` (:func:`~rpc.base.rpc_method`) that suspends on a future of the loop is
        resumed from that future's completion callback, outside any task; any other handler that
        suspends goes on as a task of the serving side, as for :meth:`call`.  At the call's deadline
        (shared with the calls begun within :data:`DEADLINE_SLACK` of it, so up to that much late)
        ``then`` is told :class:`~rpc.errors.RpcTimeout` and the handler, or the future, goes on; a
        handler whose serving side closes is cancelled (``then``: :class:`~rpc.errors.RpcUnavailable`).
        ``then`` runs in a callback: it must not raise."""
        timeout = self.call_timeout if timeout is None else timeout
        if self._closed:
            then(None, RpcUnavailable(f"transport of {self.node_id} is closed"))
            return
        try:
            entry = self.broker._pick(target)
        except RpcError as exc:
            then(None, exc)
            return
        wired = args or {}
        if self.broker.roundtrip:
            wired = roundtrip(wired)
        request = Request(method=method, args=wired, sender=self.node_id, deadline_ms=int((time.time() + timeout) * 1000))
        begun = self._begin(entry, request, later=True)
        if type(begun) is Reply:
            if begun.error is not None:
                _tell(then, target, method, timeout, begun)
                return
            result = begun.result
            if type(result) is not Later:
                then(result, None)
                return
            # The shared deadline of the calls of this timeout begun about now (_deadline), in place.
            loop = asyncio.get_running_loop()
            deadline = self._open_deadlines.get(timeout)
            if deadline is None or loop.time() > deadline.open_until:
                deadline = self._deadline(timeout, loop)
            _Awaiting(self, entry, method, result, then, timeout, deadline.calls)
            return
        assert isinstance(begun, _Suspended)
        _Chained(self, entry, begun, request, timeout, then, self._deadline(timeout, asyncio.get_running_loop()).calls)

    def _deadline(self, timeout: float, loop: asyncio.AbstractEventLoop) -> _Deadline:
        """The deadline of a ``call_then`` call begun now with ``timeout``: the open :class:`_Deadline`
        of that timeout, or a new one (one timer for all the calls it gets)."""
        now = loop.time()
        deadline = self._open_deadlines.get(timeout)
        if deadline is None or now > deadline.open_until:
            slack = min(DEADLINE_SLACK, timeout / 4)
            deadline = self._open_deadlines[timeout] = _Deadline(now + slack)
            loop.call_at(now + slack + timeout, self._expire, timeout, deadline)
        return deadline

    def _expire(self, timeout: float, deadline: _Deadline) -> None:
        """``deadline`` came: each of its calls still waiting times out."""
        if self._open_deadlines.get(timeout) is deadline:
            del self._open_deadlines[timeout]
        for call in list(deadline.calls):
            call.expire()

    async def _exchange(self, target: str, request: Request, timeout: float) -> Reply | None:
        entry = self.broker._pick(target)
        request.args = self.broker._wire(request.args)
        begun = self._begin(entry, request)
        if isinstance(begun, Reply):
            return begun
        loop = asyncio.get_running_loop()
        if not _parks(begun.waiting_on, loop):
            return await self._wait(_go_on(entry.transport, begun), target, request.method, timeout)
        return await self._follow(_Parked(entry.transport, *begun), target, request.method, loop.time() + timeout)

    async def _follow(self, parked: _Parked, target: str, method: str, deadline: float) -> Reply | None:
        """Wait for a handler suspended on a future and resume it here, in the caller's task, each
        time the future is done (as its first steps ran here): no task of its own.  It goes on as a
        task of the serving side (:meth:`_Parked.hand_over`) as soon as the caller stops waiting (it
        is cancelled, or the call times out), the handler suspends on anything but a future of this
        loop, or the serving side closes (its handler is then cancelled, as a task of it would be)."""
        loop = asyncio.get_running_loop()
        owner = parked.owner
        owner._parked.add(parked)
        heapq.heappush(self._deadlines, (deadline, next(self._numbering), parked))
        self._waiting += 1
        if deadline < self._sweep_at:
            self._arm_sweep(loop, deadline)
        try:
            while True:
                waiter: asyncio.Future[None] = loop.create_future()
                parked.waiter = waiter
                parked.waiting_on.add_done_callback(parked.wake)
                try:
                    await waiter
                except BaseException:
                    parked.hand_over()
                    raise
                if parked.task is not None:
                    return await self._wait(parked.task, target, method, deadline - loop.time())
                if not parked.waiting_on.done():
                    parked.hand_over()
                    return None
                try:
                    waiting_on = parked.step()
                except StopIteration as done:
                    reply: Reply = done.value
                    return reply
                except asyncio.CancelledError:
                    raise RpcUnavailable(f"{target} went away during {method}") from None
                parked.waiting_on = waiting_on
                if not _parks(waiting_on, loop):
                    return await self._wait(parked.hand_over(), target, method, deadline - loop.time())
        finally:
            owner._parked.discard(parked)
            parked.waiter = None  # no longer waited for: its deadline is dropped when it comes up
            self._waiting -= 1
            deadlines = self._deadlines
            while deadlines and deadlines[0][2].waiter is None:
                heapq.heappop(deadlines)
            if len(deadlines) > 2 * self._waiting + 64:  # ended calls behind a long one: kept bounded
                self._deadlines = [entry for entry in deadlines if entry[2].waiter is not None]
                heapq.heapify(self._deadlines)

    def _arm_sweep(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        self._sweep_at = when
        self._sweep_timer = loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        """Wake the calls whose deadline has come (they time out), then wait for the next one."""
        self._sweep_timer = None
        self._sweep_at = math.inf
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadlines = self._deadlines
        while deadlines and (deadlines[0][2].waiter is None or deadlines[0][0] <= now):
            _, _, parked = heapq.heappop(deadlines)
            parked.wake(None)
        if deadlines:
            self._arm_sweep(loop, deadlines[0][0])

    @staticmethod
    async def _wait(task: asyncio.Task[Reply], target: str, method: str, timeout: float) -> Reply | None:
        # A call that times out keeps running on the serving side, as over a broker: the caller waits
        # on its own future (woken by the handler's task or by the timer), never on the task itself.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(timeout, wake, None)
        try:
            await waiter
        finally:
            timer.cancel()
            task.remove_done_callback(wake)
        if not task.done():
            return None
        if task.cancelled():
            raise RpcUnavailable(f"{target} went away during {method}")
        return task.result()

    async def _post(self, target: str, request: Request) -> None:
        entry = self.broker._pick(target)
        request.args = self.broker._wire(request.args)
        # Started at once like a call, so that one sender's casts and calls reach their handlers in
        # the order they were sent (a call must not overtake the casts made before it).
        started = self._start(entry, request)
        if isinstance(started, Reply):
            _log_cast_reply(target, request.method, started)
        else:
            started.add_done_callback(lambda t: _log_cast_failure(target, request.method, t))

    async def publish_event(self, topic: str, payload: Any) -> None:
        self._check_open()
        payload = self.broker._wire(payload)
        for sub in list(self.broker._subscriptions):
            if topic_matches(sub.pattern, topic):
                sub.transport._own(asyncio.get_running_loop().create_task(
                    _deliver(sub, topic, self.broker._wire(payload))))

    async def subscribe_events(self, pattern: str, handler: EventHandler) -> Subscription:
        self._check_open()
        sub = _LocalSubscription(self, pattern, handler)
        self.broker._subscriptions.add(sub)
        self._subscriptions.add(sub)
        return sub


@types.coroutine
def _resume(coro: Coroutine[Any, Any, _T], waiting_on: Any) -> Generator[Any, Any, _T]:
    """Hand ``coro``, suspended on ``waiting_on``, to the task awaiting this: everything the task
    sends or throws (a result, a cancellation) goes on to ``coro``, as ``await`` would have done."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - forwarded, not handled
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as done:
                result: _T = done.value
                return result
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as done:
                result = done.value
                return result


async def carry_on(coro: Coroutine[Any, Any, _T], waiting_on: Any, throw: BaseException | None = None) -> _T:
    """Go on with ``coro``, which was run by hand (``coro.send``) up to a suspension on
    ``waiting_on``, in the task that awaits this, as if that task had run it from the start
    (``throw``: thrown in first, where it is suspended)."""
    if throw is not None:
        try:
            waiting_on = coro.throw(throw)
        except StopIteration as done:
            result: _T = done.value
            return result
    return await _resume(coro, waiting_on)


class _Suspended(NamedTuple):
    """A handler stopped at its first suspension: its coroutine, its context, what it awaits."""

    coro: Coroutine[Any, Any, Reply]
    context: contextvars.Context
    waiting_on: Any


def _go_on(owner: LocalTransport, suspended: _Suspended, throw: BaseException | None = None) -> asyncio.Task[Reply]:
    """A suspended handler goes on as a task of ``owner``, the serving side (``throw``: thrown in
    first, where it is suspended)."""
    coro = carry_on(suspended.coro, suspended.waiting_on, throw)
    return owner._own(asyncio.get_running_loop().create_task(coro, context=suspended.context))


def _parks(waiting_on: Any, loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a handler suspended on ``waiting_on`` can wait for it without a task: it awaits a
    future of this loop (not a bare yield, not anything else a task would refuse)."""
    return (isinstance(waiting_on, asyncio.Future) and waiting_on._asyncio_future_blocking
            and waiting_on.get_loop() is loop)


class _Parked:
    """A handler's coroutine suspended on a future of the loop, resumed by its caller's task
    (:meth:`LocalTransport._follow`) until it is handed over to a task of the serving side."""

    __slots__ = ("owner", "coro", "context", "waiting_on", "waiter", "task")

    def __init__(self, owner: LocalTransport, coro: Coroutine[Any, Any, Reply], context: contextvars.Context,
                 waiting_on: asyncio.Future[Any]) -> None:
        self.owner = owner
        self.coro = coro
        self.context = context
        self.waiting_on = waiting_on
        #: What the caller awaits: done when ``waiting_on`` is, at the call's deadline, or when handed over.
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[Reply] | None = None

    def wake(self, _: object) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def step(self) -> Any:
        """Resume the coroutine as a task woken by ``waiting_on`` would: its outcome sent or thrown in."""
        return _step(self.coro, self.context, self.waiting_on)

    def hand_over(self, *, cancel: bool = False) -> asyncio.Task[Reply]:
        """The handler goes on as a task of the serving side from where it is suspended (``cancel``:
        cancelled at once, as a task of it would be by the serving side's close); the caller, if it
        waits, is woken to wait for that task (returned)."""
        if self.task is not None:
            return self.task
        self.waiting_on.remove_done_callback(self.wake)
        suspended = _Suspended(self.coro, self.context, self.waiting_on)
        if cancel and not self.waiting_on.cancel():  # done already: thrown in when it resumes
            task = _go_on(self.owner, suspended._replace(waiting_on=None), asyncio.CancelledError())
        else:
            task = _go_on(self.owner, suspended)
        self.owner._parked.discard(self)
        self.task = task
        self.wake(None)
        return task


def _step(coro: Coroutine[Any, Any, Reply], context: contextvars.Context, waiting_on: asyncio.Future[Any]) -> Any:
    """Resume ``coro`` as a task woken by ``waiting_on`` would: its outcome sent or thrown in."""
    try:
        waiting_on.result()
    except BaseException as exc:  # noqa: BLE001 - thrown into the handler, as a task does
        return context.run(coro.throw, exc)
    return context.run(coro.send, None)


def _tell(then: Continuation, target: str, method: str, timeout: float, reply: Reply | None) -> None:
    """Tell ``then`` what :meth:`Transport.call` would return or raise for ``reply``."""
    try:
        result = reply_result(target, method, timeout, reply)
    except RpcError as exc:
        then(None, exc)
    else:
        then(result, None)


class _Deadline:
    """The deadline shared by the ``call_then`` calls of one timeout begun before ``open_until``:
    one timer (:meth:`LocalTransport._expire`) for all of them, no entry per call but in ``calls``
    (each call leaves it when it ends)."""

    __slots__ = ("open_until", "calls")

    def __init__(self, open_until: float) -> None:
        self.open_until = open_until
        self.calls: set[_Ending] = set()


class _Ending:
    """A ``call_then`` call not yet told: ``then`` is ``None`` once it was (exactly once)."""

    __slots__ = ("caller", "entry", "method", "timeout", "then", "calls")

    def __init__(self, caller: LocalTransport, entry: _LocalService, method: str, then: Continuation,
                 timeout: float, calls: set[_Ending]) -> None:
        self.caller = caller
        self.entry = entry
        self.method = method
        self.timeout = timeout
        self.then: Continuation | None = then
        #: The calls sharing its deadline (:class:`_Deadline`): it is one of them until it ends.
        self.calls = calls
        calls.add(self)

    def _told(self) -> Continuation | None:
        """``then``, taken: the call ends (``None``: it had ended)."""
        then = self.then
        if then is not None:
            self.then = None
            self.calls.discard(self)
        return then

    def expire(self) -> None:
        """The call's deadline came: ``then`` is told :class:`~rpc.errors.RpcTimeout` (the work goes on)."""
        then = self._told()
        if then is not None:
            then(None, RpcTimeout(f"{self.entry.name}.{self.method} did not answer within {self.timeout:g} s"))


class _Awaiting(_Ending):
    """A ``call_then`` call whose handler answered with a :class:`~rpc.base.Later`: told from the
    future's completion callback (:meth:`wake`), or at its deadline."""

    __slots__ = ("later",)

    def __init__(self, caller: LocalTransport, entry: _LocalService, method: str, later: Later,
                 then: Continuation, timeout: float, calls: set[_Ending]) -> None:
        # _Ending's fields, set here: one call fewer per text.
        self.caller = caller
        self.entry = entry
        self.method = method
        self.timeout = timeout
        self.then: Continuation | None = then
        self.calls = calls
        calls.add(self)
        self.later = later
        later.future.add_done_callback(self.wake)

    def wake(self, future: asyncio.Future[Any]) -> None:
        then = self._told()
        if then is None:  # its deadline came first
            return
        if not future.cancelled() and future.exception() is None and not self.caller.broker.roundtrip:
            then(self.later.value, None)
            return
        entry = self.entry
        reply = later_reply(entry.name, self.method, self.caller.node_id, self.later, entry.transport.on_failed)
        if reply.error is None:
            reply = self.caller._wired(entry.name, self.method, reply)
        _tell(then, entry.name, self.method, self.timeout, reply)

    def expire(self) -> None:
        self.later.future.remove_done_callback(self.wake)
        super().expire()


class _Chained(_Ending):
    """A ``call_then`` call whose handler suspended.  A ``resumable`` handler suspended on a future
    of the loop is resumed from that future's completion callback (:meth:`wake`), outside any task,
    until it finishes; any other goes on as a task of the serving side (:meth:`hand_over`), and its
    end ends the call.  At the deadline the handler goes on as a task and the caller is told
    :class:`~rpc.errors.RpcTimeout`; a :class:`~rpc.base.Later` it answers with is waited for until
    the same deadline."""

    __slots__ = ("owner", "coro", "context", "waiting_on", "task")

    def __init__(self, caller: LocalTransport, entry: _LocalService, begun: _Suspended, request: Request,
                 timeout: float, then: Continuation, calls: set[_Ending]) -> None:
        super().__init__(caller, entry, request.method, then, timeout, calls)
        self.owner = entry.transport
        self.coro, self.context, self.waiting_on = begun
        self.task: asyncio.Task[Reply] | None = None
        if request.method in entry.resumable and _parks(begun.waiting_on, asyncio.get_running_loop()):
            self.owner._chained.add(self)
            begun.waiting_on.add_done_callback(self.wake)
        else:
            self.hand_over()

    def wake(self, _: object) -> None:
        """The future the handler awaits is done: resumed here, up to its next suspension or its end."""
        try:
            waiting_on = _step(self.coro, self.context, self.waiting_on)
        except StopIteration as done:
            self.owner._chained.discard(self)
            self._end(done.value)
            return
        except asyncio.CancelledError:
            self.owner._chained.discard(self)
            self._gone()
            return
        self.waiting_on = waiting_on
        if _parks(waiting_on, asyncio.get_running_loop()):
            waiting_on.add_done_callback(self.wake)
        else:
            self.hand_over()

    def hand_over(self, *, cancel: bool = False) -> asyncio.Task[Reply]:
        """The handler goes on as a task of the serving side from where it is suspended (``cancel``:
        cancelled at once, as by the serving side's close); that task's end ends the call."""
        if self.task is not None:
            return self.task
        waiting_on = self.waiting_on
        suspended = _Suspended(self.coro, self.context, waiting_on)
        if isinstance(waiting_on, asyncio.Future):
            waiting_on.remove_done_callback(self.wake)
            if cancel and not waiting_on.cancel():  # done already: thrown in when it resumes
                task = _go_on(self.owner, suspended._replace(waiting_on=None), asyncio.CancelledError())
            else:
                task = _go_on(self.owner, suspended)
        else:
            task = _go_on(self.owner, suspended)
            if cancel:
                task.cancel()
        self.owner._chained.discard(self)
        self.task = task
        task.add_done_callback(self._task_ended)
        return task

    def _task_ended(self, task: asyncio.Task[Reply]) -> None:
        if task.cancelled():
            self._gone()
        else:
            self._end(task.result())

    def expire(self) -> None:
        if self.then is not None and self.task is None:
            self.hand_over()  # the handler goes on, as over a broker
        super().expire()

    def _gone(self) -> None:
        then = self._told()
        if then is not None:
            then(None, RpcUnavailable(f"{self.entry.name} went away during {self.method}"))

    def _end(self, reply: Reply) -> None:
        then = self._told()
        if then is None:  # timed out already
            return
        if reply.error is None and type(reply.result) is Later:  # until the same deadline
            _Awaiting(self.caller, self.entry, self.method, reply.result, then, self.timeout, self.calls)
            return
        _tell(then, self.entry.name, self.method, self.timeout, reply)


async def _deliver(sub: _LocalSubscription, topic: str, payload: Any) -> None:
    try:
        await sub.handler(topic, payload)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("event_handler_failed", topic=topic, node=sub.transport.node_id)


def _log_cast_failure(target: str, method: str, task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        _log_cast_reply(target, method, task.result())


def _log_cast_reply(target: str, method: str, reply: Reply) -> None:
    if reply.error is not None:
        log.warning("cast_failed", service=target, method=method, code=reply.error.code,
                    error=reply.error.message)
