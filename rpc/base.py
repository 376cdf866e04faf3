"""The transport contract shared by the in-process and the RabbitMQ transports.

A *service* is a name that reaches one or more handler objects: several processes serving the same
name share its calls (competing consumers); a per-process name (a worker id) reaches exactly that
process.  Handlers are objects whose methods marked with :func:`rpc_method` are callable by name
with keyword arguments; their return value must be JSON-serialisable.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import functools
import inspect
import math
import sys
import time
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from .errors import (
    BAD_ARGUMENTS,
    INTERNAL,
    SERVICE_GONE,
    UNKNOWN_METHOD,
    Declined,
    RpcError,
    RpcRemoteError,
    RpcTimeout,
    RpcUnavailable,
    ServiceError,
)
from .logs import RpcLog
from .messages import ErrorBody, Reply, Request

__all__ = [
    "Transport",
    "Subscription",
    "ServiceHandle",
    "EventHandler",
    "LinkListener",
    "DepartureListener",
    "HandledListener",
    "rpc_method",
    "rpc_methods",
    "rpc_method_names",
    "resumable",
    "later_reply",
    "reply_result",
    "request_id",
    "dispatch",
    "arguments_type",
    "Later",
]

log = RpcLog()

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
EventHandler = Callable[[str, Any], Awaitable[None]]
#: Told ``(method, seconds)`` after each request a handler of this transport ran (for metrics).
HandledListener = Callable[[str, float], None]
#: Told ``False`` when the transport loses its broker, ``True`` when it has it back.
LinkListener = Callable[[bool], None]
#: Told ``(service, method, exception)`` when a handler raised an unexpected exception (for alerts).
FailedListener = Callable[[str, str, BaseException], None]
#: Told the name of a service whose last server went away.
DepartureListener = Callable[[str], None]

_RPC_ATTR = "__switchboard_rpc__"
_RESUMABLE_ATTR = "__switchboard_resumable__"


class Later:
    """What an :func:`rpc_method` may return to answer once ``future`` (a future of the running
    loop) completes: ``value`` if it succeeds, its exception (mapped as if the method had raised it:
    a :class:`~rpc.errors.ServiceError` keeps its code, anything else is ``internal``) if not.

    Every transport answers it the same: :func:`dispatch` awaits the future for a caller that waits
    in a coroutine (RabbitMQ, the in-process ``call``).  Only the in-process
    :meth:`~rpc.local.LocalTransport.call_then` takes the :class:`Later` itself and answers from the
    future's completion callback, so no coroutine of the handler stays suspended meanwhile.  The
    future must complete (or fail) on its own: the caller's deadline does not cancel it."""

    __slots__ = ("future", "value")

    def __init__(self, future: asyncio.Future[Any], value: Any) -> None:
        self.future = future
        self.value = value


@typing.overload
def rpc_method(func: F, /) -> F: ...


@typing.overload
def rpc_method(*, resumable: bool = ...) -> Callable[[F], F]: ...


def rpc_method(func: F | None = None, /, *, resumable: bool = False) -> F | Callable[[F], F]:
    """Mark an ``async def`` method as callable over RPC under its own name (``@rpc_method``, or
    ``@rpc_method(resumable=True)``).

    Its parameters' annotations are its wire contract: :func:`dispatch` converts a request's
    arguments to them (strictly: ``"1"`` is no ``int``; a mapping becomes the annotated struct) before
    the method runs, and answers ``bad_arguments`` without running it when they do not fit.

    ``resumable``: the method is safe to resume outside any task.  After its first suspension it
    awaits only futures of the running loop and nothing that needs a current task
    (``asyncio.current_task()``, ``asyncio.timeout``, ``asyncio.wait_for``, a task's cancellation):
    :meth:`~rpc.local.LocalTransport.call_then` then resumes it from the completion callbacks of the
    futures it awaits.  A method without the mark that suspends goes on as a task."""
    def mark(method: F) -> F:
        candidate: Any = method  # checked as Any so the narrowing does not change F
        if not inspect.iscoroutinefunction(candidate):
            raise TypeError(f"rpc_method {method.__qualname__} must be async")
        setattr(method, _RPC_ATTR, True)
        if resumable:
            setattr(method, _RESUMABLE_ATTR, True)
        return method

    return mark if func is None else mark(func)


def resumable(method: Callable[..., Any]) -> bool:
    """Whether ``method`` (an :func:`rpc_method`, bound or not) was marked ``resumable``."""
    return getattr(method, _RESUMABLE_ATTR, False) is True


#: Longest ``bad_arguments`` message taken from the decoder (it may quote the caller's input).
_MAX_MISMATCH = 200


@functools.cache
def arguments_type(func: Callable[..., Any]) -> type[msgspec.Struct] | None:
    """The keyword arguments of the RPC method ``func`` as one struct type, built once from its
    signature and annotations (``None`` for a method taking ``**kwargs``: it checks its own)."""
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)  # keep Annotated constraints (msgspec.Meta)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name, parameter in signature.parameters.items():
        if name == "self":
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        hint = hints.get(name, Any)
        fields.append((name, hint) if parameter.default is inspect.Parameter.empty
                      else (name, hint, parameter.default))
    return msgspec.defstruct(f"{func.__qualname__}.arguments", fields, forbid_unknown_fields=True, kw_only=True)


def _converted(method: Callable[..., Any], args: dict[str, Any]) -> dict[str, Any] | str:
    """``args`` converted to ``method``'s annotations, or what is wrong with them."""
    arguments = arguments_type(getattr(method, "__func__", method))
    if arguments is None:
        return args
    try:
        typed = msgspec.convert(args, arguments, strict=True)
    except msgspec.ValidationError as exc:
        return _signature_mismatch(method, args) or str(exc)[:_MAX_MISMATCH]
    return {name: getattr(typed, name) for name in args}  # what was not given keeps the method's default


def rpc_methods(handler: object) -> dict[str, Callable[..., Awaitable[Any]]]:
    """The bound RPC methods of ``handler`` by name."""
    methods: dict[str, Callable[..., Awaitable[Any]]] = {}
    for name in dir(type(handler)):
        attr = getattr(type(handler), name, None)
        if callable(attr) and getattr(attr, _RPC_ATTR, False):
            arguments_type(attr)  # an annotation that does not resolve fails here, not at the first call
            methods[name] = getattr(handler, name)
    if not methods:
        raise TypeError(f"{type(handler).__name__} has no @rpc_method methods")
    return methods


#: The identity of the request being handled (its sender and the caller's correlation id), the
#: same when the broker delivers it again after its first server died; ``None`` in-process.
_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("switchboard_request_id", default=None)


def request_id() -> str | None:
    """The identity of the request the current handler serves (see :data:`_REQUEST_ID`)."""
    return _REQUEST_ID.get()


def rpc_method_names(handler_type: type) -> list[str]:
    """The names of the :func:`rpc_method` methods of a handler class."""
    return [name for name in dir(handler_type)
            if callable(getattr(handler_type, name, None)) and getattr(getattr(handler_type, name), _RPC_ATTR, False)]


def dispatch(
    service: str, methods: dict[str, Callable[..., Awaitable[Any]]], request: Request,
    on_handled: HandledListener | None = None, on_failed: FailedListener | None = None, later: bool = False,
) -> Awaitable[Reply]:
    """Run ``request`` against ``methods`` and turn the outcome into a :class:`Reply`.

    Expected errors keep their code; anything else is logged here with its traceback and sent as
    ``internal`` without it.  ``on_handled`` is told how long a known method took (a declined
    request is not counted: another process handles it); without one, nothing wraps the call.
    ``on_failed`` is told of each unexpected exception of a handler.  A :class:`Later` the method
    returns is awaited, unless ``later``: then it is the reply's result as it is, and its caller
    answers it (:func:`later_reply`) once its future is done.
    """
    if on_handled is None or request.method not in methods:
        return _dispatch(service, methods, request, on_failed, later)
    return _timed(service, methods, request, on_handled, on_failed, later)


async def _timed(service: str, methods: dict[str, Callable[..., Awaitable[Any]]], request: Request,
                 on_handled: HandledListener, on_failed: FailedListener | None, later: bool) -> Reply:
    started = time.perf_counter()
    reply = await _dispatch(service, methods, request, on_failed, later)
    if type(reply.result) is Later:  # timed to the future's completion
        method = request.method
        reply.result.future.add_done_callback(lambda _: on_handled(method, time.perf_counter() - started))
    else:
        on_handled(request.method, time.perf_counter() - started)
    return reply


def later_reply(service: str, method: str, sender: str | None, later: Later,
                on_failed: FailedListener | None = None) -> Reply:
    """The reply of a method that returned ``later``, once its future is done, as :func:`dispatch`
    makes it for a method that raised: an unexpected exception is logged and answered ``internal``;
    a cancelled future is ``service_gone``."""
    future = later.future
    if future.cancelled():
        return Reply(error=ErrorBody(SERVICE_GONE, f"{service}.{method} was cancelled"))
    error = future.exception()
    if error is None:
        return Reply(result=later.value)
    if isinstance(error, (ServiceError, RpcError)):
        return Reply(error=ErrorBody(error.code, error.message, error.details))
    try:
        raise error
    except Exception:
        return _failed(service, method, sender, on_failed)


async def _dispatch(service: str, methods: dict[str, Callable[..., Awaitable[Any]]], request: Request,
                    on_failed: FailedListener | None = None, later: bool = False) -> Reply:
    method = methods.get(request.method)
    if method is None:
        return Reply(error=ErrorBody(UNKNOWN_METHOD, f"{service} has no method {request.method!r}"))
    args = _converted(method, request.args)
    if isinstance(args, str):
        return Reply(error=ErrorBody(BAD_ARGUMENTS, f"{service}.{request.method}: {args}"))
    try:
        result = await method(**args)
        if type(result) is Later and not later:
            await result.future
            result = result.value
    except Declined:
        raise
    except (ServiceError, RpcError) as exc:
        return Reply(error=ErrorBody(exc.code, exc.message, exc.details))
    except asyncio.CancelledError:
        raise
    except Exception:
        return _failed(service, request.method, request.sender, on_failed)
    return Reply(result=result)


def _failed(service: str, method: str, sender: str | None, on_failed: FailedListener | None) -> Reply:
    """The handler raised something unexpected (being handled): logged once with its traceback and
    counted, told to ``on_failed``, answered ``internal`` without it."""
    log.exception("rpc_handler_failed", service=service, method=method, sender=sender)
    if on_failed is not None:
        error = sys.exc_info()[1]
        assert error is not None
        try:
            on_failed(service, method, error)
        except Exception:
            log.exception("rpc_failure_listener_failed", service=service, method=method)
    return Reply(error=ErrorBody(INTERNAL, f"{service}.{method} failed"))


def _signature_mismatch(method: Callable[..., Any], args: dict[str, Any]) -> str | None:
    """What is wrong with ``args`` for ``method``, in our words (a caller never sees Python's
    exception text), or ``None`` when they fit its signature."""
    parameters = inspect.signature(method).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    unknown = sorted(name for name in args if name not in parameters)
    missing = [name for name, p in parameters.items() if p.default is inspect.Parameter.empty and name not in args]
    problems = []
    if unknown:
        # Names are the caller's input: shown only when they are plain identifiers.
        shown = [name for name in unknown if name.isidentifier() and name.isascii() and len(name) <= 40]
        problems.append("unknown argument(s) " + ", ".join(shown) if len(shown) == len(unknown)
                        else f"{len(unknown)} unknown argument(s)")
    if missing:
        problems.append("missing " + ", ".join(missing))
    if not problems:
        return None
    return "; ".join(problems) + "; expected " + (", ".join(parameters) or "no arguments")


def reply_result(target: str, method: str, timeout: float, reply: Reply | None) -> Any:
    """The result of a call's ``reply`` (``None``: none came within ``timeout``), or the error it
    stands for, raised as :meth:`Transport.call` raises it."""
    if reply is None:
        raise RpcTimeout(f"{target}.{method} did not answer within {timeout:g} s")
    if reply.error is not None:
        if reply.error.code == SERVICE_GONE:
            raise RpcUnavailable(reply.error.message)
        raise RpcRemoteError(reply.error.code, reply.error.message, reply.error.details)
    return reply.result


def deadline_passed(request: Request) -> bool:
    return bool(request.deadline_ms) and request.deadline_ms < time.time() * 1000


class Subscription(abc.ABC):
    """A subscription to fault events; ``cancel()`` stops delivery."""

    @abc.abstractmethod
    async def cancel(self) -> None: ...


class ServiceHandle(abc.ABC):
    """A served name; ``stop()`` stops consuming it."""

    name: str

    @abc.abstractmethod
    async def stop(self) -> None: ...


class Transport(abc.ABC):
    """Calls, casts and fault events between the components of one cluster.

    ``node_id`` names the process (or the embedded component) that owns the transport; it is sent
    with every message so logs on the other side can say who asked.
    """

    def __init__(self, node_id: str, *, call_timeout: float = 2.0) -> None:
        self.node_id = node_id
        self.call_timeout = call_timeout
        self._services: set[Any] = set()
        self._subscriptions: set[Any] = set()
        self._closed = False
        self._link_listeners: list[LinkListener] = []
        self._link_up = True
        #: Told how long each request its services handled took (``None``: not measured).
        self.on_handled: HandledListener | None = None
        #: Told of each unexpected exception of a handler of its services (``None``: logged only).
        self.on_failed: FailedListener | None = None

    @property
    def connected(self) -> bool:
        """Whether this transport can reach the others now (an in-process one always can until closed)."""
        return not self._closed

    def watch_link(self, listener: LinkListener) -> None:
        """Call ``listener(False)`` whenever this transport loses its broker and ``listener(True)``
        when it has it back (an in-process transport never loses it)."""
        self._link_listeners.append(listener)

    def _link_changed(self, up: bool) -> None:
        """Tell the listeners, once per change (a failed reconnection attempt is no new loss)."""
        if up == self._link_up:
            return
        self._link_up = up
        for listener in list(self._link_listeners):
            try:
                listener(up)
            except Exception:
                log.exception("link_listener_failed", node=self.node_id)

    async def watch_departures(self, listener: DepartureListener) -> bool:
        """Call ``listener(service)`` as soon as the last server of ``service`` is gone (its process
        stopped serving it, died, or lost its broker connection).  ``False`` when this transport
        cannot tell (the caller then relies on keepalives alone)."""
        return False

    async def start(self) -> None:
        """Connect; idempotent.  A closed transport cannot be started again."""
        if self._closed:
            raise RuntimeError(f"the transport of {self.node_id} was closed; make a new one")

    async def close(self) -> None:
        """Stop serving, fail in-flight calls with ``RpcUnavailable``, disconnect; idempotent."""
        if self._closed:
            return
        self._closed = True
        for service in list(self._services):
            await service.stop()
        for sub in list(self._subscriptions):
            await sub.cancel()
        await self._shutdown()

    @abc.abstractmethod
    async def _shutdown(self) -> None:
        """What closing means for this transport once services and subscriptions are gone."""

    @abc.abstractmethod
    async def serve(self, service: str, handler: object, *, single_active: bool = False) -> ServiceHandle:
        """Expose ``handler``'s :func:`rpc_method` methods under ``service``.

        Returns once calls to ``service`` can reach this handler.  With ``single_active``, of the
        processes serving ``service`` only one gets its calls (the first one still serving; over
        RabbitMQ a quorum queue with a single active consumer and manual acks, so that requests a
        dead server had taken go to the next one); the others wait.  A handler that raises
        :class:`~rpc.errors.Declined` leaves its request to the active server.
        """

    async def call(
        self, target: str, method: str, args: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Call ``target.method(**args)`` and return its result.

        Raises :class:`~rpc.errors.RpcTimeout` when no reply comes within ``timeout`` (default:
        the transport's ``call_timeout``), :class:`~rpc.errors.RpcUnavailable` when the target
        cannot be reached, :class:`~rpc.errors.RpcRemoteError` when the handler failed.
        """
        timeout = self.call_timeout if timeout is None else timeout
        waited = await self._ready(timeout)
        left = timeout - waited
        if waited and left <= 0:
            raise RpcTimeout(f"{target}.{method}: the broker came back too late ({timeout:g} s)")
        request = Request(method=method, args=args or {}, sender=self.node_id,
                          deadline_ms=int((time.time() + left) * 1000))
        return reply_result(target, method, timeout, await self._exchange(target, request, left))

    async def cast(self, target: str, method: str, args: dict[str, Any] | None = None) -> None:
        """Send ``target.method(**args)`` without waiting for (or getting) a result.

        Raises :class:`~rpc.errors.RpcUnavailable` if the message cannot be handed to the broker.
        """
        await self._ready(math.inf)
        await self._post(target, Request(method=method, args=args or {}, sender=self.node_id))

    async def _ready(self, limit: float) -> float:
        """Raise :class:`~rpc.errors.RpcUnavailable` unless a message can be sent now, or after a
        wait of at most ``limit`` seconds (the transport bounds it further); returns the seconds
        waited.  Here: only a closed transport refuses, at once."""
        if self._closed:
            raise RpcUnavailable(f"transport of {self.node_id} is closed")
        return 0.0

    @abc.abstractmethod
    async def _exchange(self, target: str, request: Request, timeout: float) -> Reply | None:
        """Send ``request`` to ``target`` and await its reply for at most ``timeout`` seconds
        (``None``: none came in time).  Raises :class:`~rpc.errors.RpcUnavailable` when ``target``
        cannot be reached or went away before it answered."""

    @abc.abstractmethod
    async def _post(self, target: str, request: Request) -> None:
        """Hand ``request`` to ``target`` (a cast: no reply).  Raises
        :class:`~rpc.errors.RpcUnavailable` when it cannot be handed over."""

    @abc.abstractmethod
    async def publish_event(self, topic: str, payload: Any) -> None:
        """Publish a fault event such as ``exit.quit`` to every matching subscriber."""

    @abc.abstractmethod
    async def subscribe_events(self, pattern: str, handler: EventHandler) -> Subscription:
        """Deliver events whose topic matches ``pattern`` (``exit.#``) to ``handler(topic, payload)``."""
