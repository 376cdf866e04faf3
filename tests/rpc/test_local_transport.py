"""What only the in-process transport does: handlers start at once in the caller's turn and go on
as tasks of the serving side when they suspend, with the broker's semantics kept."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from rpc import Later, RpcRemoteError, RpcTimeout, RpcUnavailable, ServiceError, rpc_method
from rpc.local import LocalBroker
from tests.support.waiting import wait_until

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="caller")


class Handler:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.release = asyncio.Event()

    @rpc_method
    async def at_once(self, value: Any) -> Any:
        marker.set("handler")
        return value

    @rpc_method
    async def steps(self, n: int) -> list[int]:
        seen = []
        for i in range(n):
            # Two kinds of suspension: a bare yield and a wait on a loop timer (nothing depends on
            # how long it lasts).
            await asyncio.sleep(0)
            await asyncio.sleep(0.001)
            seen.append(i)
        return seen

    @rpc_method
    async def wait_for_release(self, name: str) -> str:
        self.started.append(name)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        self.finished.append(name)
        return name

    @rpc_method
    async def note(self, item: Any) -> None:
        self.finished.append(item)

    @rpc_method
    async def notes(self) -> list[str]:
        return self.finished

    @rpc_method
    async def fail_later(self) -> None:
        await asyncio.sleep(0.001)  # suspends on a loop timer first (its length does not matter)
        raise ServiceError("late_failure", "failed after suspending")


@pytest.fixture
async def pair() -> Any:
    broker = LocalBroker(roundtrip=True)
    server, client = broker.transport("server"), broker.transport("client")
    handler = Handler()
    await server.serve("svc", handler)
    yield server, client, handler
    await client.close()
    await server.close()


async def test_a_handler_that_never_suspends_answers_and_keeps_its_context_to_itself(pair: Any) -> None:
    _, client, _ = pair
    assert await client.call("svc", "at_once", {"value": [1, "two"]}) == [1, "two"]
    assert marker.get() == "caller"


async def test_a_handler_that_suspends_many_times_answers(pair: Any) -> None:
    _, client, _ = pair
    assert await client.call("svc", "steps", {"n": 5}) == [0, 1, 2, 3, 4]


async def test_a_failure_after_a_suspension_keeps_its_code(pair: Any) -> None:
    _, client, _ = pair
    with pytest.raises(RpcRemoteError) as info:
        await client.call("svc", "fail_later")
    assert info.value.code == "late_failure"


async def test_a_timed_out_call_keeps_running_on_the_serving_side(pair: Any) -> None:
    _, client, handler = pair
    with pytest.raises(RpcTimeout):
        await client.call("svc", "wait_for_release", {"name": "a"}, timeout=0.05)
    handler.release.set()
    await wait_until(lambda: handler.finished or handler.cancelled, what="the handler's end")
    assert handler.finished == ["a"] and handler.cancelled == []


async def test_a_cancelled_caller_does_not_cancel_the_handler(pair: Any) -> None:
    _, client, handler = pair
    call = asyncio.create_task(client.call("svc", "wait_for_release", {"name": "b"}))
    await wait_until(lambda: handler.started == ["b"], what="the handler waiting")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    handler.release.set()
    await wait_until(lambda: handler.finished or handler.cancelled, what="the handler's end")
    assert handler.finished == ["b"] and handler.cancelled == []


async def test_closing_the_serving_side_cancels_a_suspended_handler_inside(pair: Any) -> None:
    server, client, handler = pair
    call = asyncio.create_task(client.call("svc", "wait_for_release", {"name": "c"}))
    await wait_until(lambda: handler.started == ["c"], what="the handler waiting")
    await server.close()
    with pytest.raises(RpcUnavailable):
        await call
    assert handler.cancelled == ["c"] and handler.finished == []


async def test_a_cancellation_that_lands_as_the_awaited_thing_completes_still_reaches_the_handler(
        pair: Any) -> None:
    server, client, handler = pair
    call = asyncio.create_task(client.call("svc", "wait_for_release", {"name": "d"}))
    await wait_until(lambda: handler.started == ["d"], what="the handler waiting")
    handler.release.set()  # the handler's task is woken, but has not run yet…
    await server.close()  # …when it is cancelled: the cancellation is thrown into the handler
    with pytest.raises(RpcUnavailable):
        await call
    assert handler.cancelled == ["d"] and handler.finished == []


async def test_a_call_does_not_overtake_the_casts_sent_before_it(pair: Any) -> None:
    _, client, _ = pair
    for n in range(3):
        await client.cast("svc", "note", {"item": f"cast-{n}"})
    assert await client.call("svc", "notes") == ["cast-0", "cast-1", "cast-2"]


class Parking:
    """A handler that waits on a future the test completes (as the controller's commit does)."""

    def __init__(self) -> None:
        self.gates: list[asyncio.Future[str]] = []
        self.tasks: list[asyncio.Task[Any] | None] = []

    @rpc_method
    async def park(self, times: int = 1) -> str:
        answer = ""
        for _ in range(times):
            gate = asyncio.get_running_loop().create_future()
            self.gates.append(gate)
            answer += await gate
            self.tasks.append(asyncio.current_task())
        return answer

    @rpc_method(resumable=True)
    async def park_resumable(self, times: int = 1) -> str:
        """:meth:`park`, marked safe to resume outside any task."""
        return await self.park(times)


@pytest.fixture
async def parking() -> Any:
    broker = LocalBroker(roundtrip=True)
    server, client = broker.transport("server"), broker.transport("client")
    handler = Parking()
    await server.serve("park", handler)
    yield client, handler
    await client.close()
    await server.close()


async def test_a_handler_waiting_on_a_future_is_resumed_in_its_callers_task(parking: Any) -> None:
    client, handler = parking
    tasks_before = len(asyncio.all_tasks())
    call = asyncio.create_task(client.call("park", "park", {"times": 2}))
    await wait_until(lambda: len(handler.gates) == 1, what="the handler waiting")
    assert len(asyncio.all_tasks()) == tasks_before + 1  # the caller's task only
    handler.gates[0].set_result("a")
    await wait_until(lambda: len(handler.gates) == 2, what="the handler waiting again")
    assert len(asyncio.all_tasks()) == tasks_before + 1
    handler.gates[1].set_result("b")
    assert await call == "ab"
    assert handler.tasks == [call, call]


async def test_calls_time_out_at_their_own_deadline_whatever_their_order(parking: Any) -> None:
    client, handler = parking
    loop = asyncio.get_running_loop()
    started = loop.time()
    long = asyncio.create_task(client.call("park", "park", timeout=30))
    short = asyncio.create_task(client.call("park", "park", timeout=0.05))
    with pytest.raises(RpcTimeout):
        await short
    assert loop.time() - started < 5 and not long.done()
    for gate in handler.gates:
        gate.set_result("late")
    assert await long == "late"
    await wait_until(lambda: len(handler.tasks) == 2, what="the timed-out handler's end")
    # One resumed in its caller's task, the timed-out one in a task of its own.
    assert long in handler.tasks and short not in handler.tasks and None not in handler.tasks
    assert client._deadlines == []


async def test_a_handler_that_failed_after_parking_answers_its_error(parking: Any) -> None:
    client, handler = parking
    call = asyncio.create_task(client.call("park", "park"))
    await wait_until(lambda: len(handler.gates) == 1, what="the handler waiting")
    handler.gates[0].set_exception(ServiceError("gate_failed", "no"))
    with pytest.raises(RpcRemoteError) as info:
        await call
    assert info.value.code == "gate_failed"


async def test_the_deadlines_of_ended_calls_behind_a_long_one_are_not_kept(parking: Any) -> None:
    client, handler = parking
    long = asyncio.create_task(client.call("park", "park", timeout=60))
    await wait_until(lambda: len(handler.gates) == 1, what="the long call waiting")
    for n in range(100):
        call = asyncio.create_task(client.call("park", "park", timeout=30))
        await wait_until(lambda: len(handler.gates) == n + 2, what="the call waiting")
        handler.gates[-1].set_result("quick")
        assert await call == "quick"
    assert len(client._deadlines) <= 2 + 64
    handler.gates[0].set_result("long")
    assert await long == "long"
    assert client._deadlines == []


async def test_a_parked_caller_cancelled_as_its_future_completes_leaves_the_handler_to_finish(
        parking: Any) -> None:
    client, handler = parking
    call = asyncio.create_task(client.call("park", "park"))
    await wait_until(lambda: len(handler.gates) == 1, what="the handler waiting")
    handler.gates[0].set_result("done")  # the caller's wakeup is on its way…
    call.cancel()  # …when it is cancelled
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_until(lambda: len(handler.tasks) == 1, what="the handler's end")
    assert handler.tasks[0] is not call and handler.tasks[0] is not None


async def test_a_parked_handler_whose_future_is_cancelled_has_the_cancellation_thrown_in(parking: Any) -> None:
    client, handler = parking
    call = asyncio.create_task(client.call("park", "park"))
    await wait_until(lambda: len(handler.gates) == 1, what="the handler waiting")
    handler.gates[0].cancel()
    with pytest.raises(RpcUnavailable):
        await call
    assert handler.tasks == []


# -- call_then: the caller's continuation, no coroutine of its own ---------------------------------


class Outcomes:
    """A ``call_then`` continuation that records what it was told."""

    def __init__(self) -> None:
        self.told: list[tuple[Any, Any]] = []

    def __call__(self, result: Any, error: Any) -> None:
        self.told.append((result, error))


def _waiting(client: Any) -> int:
    """The client's ``call_then`` calls still waiting (in a shared deadline)."""
    return sum(len(deadline.calls) for deadline in client._open_deadlines.values())


async def test_call_then_tells_a_handler_that_never_suspends_at_once(pair: Any) -> None:
    _, client, _ = pair
    then = Outcomes()
    client.call_then("svc", "at_once", {"value": [1, "two"]}, then)
    assert then.told == [([1, "two"], None)]
    assert marker.get() == "caller"
    client.call_then("nobody", "at_once", {"value": 1}, then)
    assert isinstance(then.told[1][1], RpcUnavailable)


async def test_call_then_resumes_a_resumable_handler_from_its_futures_callback_without_a_task(parking: Any) -> None:
    client, handler = parking
    tasks_before = len(asyncio.all_tasks())
    then = Outcomes()
    client.call_then("park", "park_resumable", {"times": 2}, then)
    assert len(handler.gates) == 1 and then.told == []
    assert len(asyncio.all_tasks()) == tasks_before  # nobody waits in a task
    handler.gates[0].set_result("a")
    await wait_until(lambda: len(handler.gates) == 2, what="the handler waiting again")
    assert len(asyncio.all_tasks()) == tasks_before
    handler.gates[1].set_result("b")
    await wait_until(lambda: then.told, what="the outcome")
    assert then.told == [("ab", None)]
    assert handler.tasks == [None, None]  # resumed outside any task
    assert _waiting(client) == 0


async def test_call_then_of_a_handler_not_marked_resumable_goes_on_as_a_task(parking: Any) -> None:
    """Only a method marked ``resumable`` runs outside a task: any other that suspends has a task
    of the serving side from its first suspension on (``asyncio.current_task()`` works in it)."""
    client, handler = parking
    then = Outcomes()
    client.call_then("park", "park", {"times": 2}, then)
    assert len(handler.gates) == 1 and then.told == []
    handler.gates[0].set_result("a")
    await wait_until(lambda: len(handler.gates) == 2, what="the handler waiting again")
    handler.gates[1].set_result("b")
    await wait_until(lambda: then.told, what="the outcome")
    assert then.told == [("ab", None)]
    assert all(task is not None for task in handler.tasks) and len(handler.tasks) == 2
    assert _waiting(client) == 0


async def test_call_then_tells_the_error_of_a_handler_that_failed_after_parking(parking: Any) -> None:
    client, handler = parking
    then = Outcomes()
    client.call_then("park", "park_resumable", None, then)
    handler.gates[0].set_exception(ServiceError("gate_failed", "no"))
    await wait_until(lambda: then.told, what="the outcome")
    [(result, error)] = then.told
    assert result is None and isinstance(error, RpcRemoteError) and error.code == "gate_failed"


async def test_call_then_times_out_and_leaves_the_handler_running_as_a_task(parking: Any) -> None:
    client, handler = parking
    then = Outcomes()
    client.call_then("park", "park_resumable", None, then, timeout=0.05)
    await wait_until(lambda: then.told, what="the timeout")
    [(result, error)] = then.told
    assert result is None and isinstance(error, RpcTimeout)
    handler.gates[0].set_result("late")
    await wait_until(lambda: handler.tasks, what="the handler's end")
    assert handler.tasks[0] is not None and len(then.told) == 1
    assert _waiting(client) == 0


async def test_call_then_of_a_handler_that_suspends_otherwise_goes_on_as_a_task(pair: Any) -> None:
    _, client, _ = pair
    then = Outcomes()
    client.call_then("svc", "steps", {"n": 3}, then)
    await wait_until(lambda: then.told, what="the outcome")
    assert then.told == [([0, 1, 2], None)]


async def test_call_then_of_a_handler_whose_serving_side_closes_tells_unavailable(pair: Any) -> None:
    server, client, handler = pair
    then = Outcomes()
    client.call_then("svc", "wait_for_release", {"name": "e"}, then)
    assert handler.started == ["e"]
    await asyncio.sleep(0)  # its task (not marked resumable) has started
    await server.close()
    await wait_until(lambda: then.told, what="the outcome")
    [(result, error)] = then.told
    assert result is None and isinstance(error, RpcUnavailable)
    assert handler.cancelled == ["e"]


async def test_call_then_of_a_resumed_handler_whose_serving_side_closes_tells_unavailable(parking: Any) -> None:
    client, handler = parking
    then = Outcomes()
    client.call_then("park", "park_resumable", None, then)
    [served] = client.broker._services["park"]
    server = served.transport
    assert server._chained
    await server.close()
    await wait_until(lambda: then.told, what="the outcome")
    [(result, error)] = then.told
    assert result is None and isinstance(error, RpcUnavailable) and not server._chained


async def test_call_then_raises_for_arguments_that_cannot_be_sent_and_calls_nothing(pair: Any) -> None:
    _, client, handler = pair
    then = Outcomes()
    with pytest.raises(TypeError):
        client.call_then("svc", "note", {"item": object()}, then)
    assert then.told == [] and handler.finished == [] and _waiting(client) == 0


class Deferring:
    """A handler that answers with a :class:`rpc.Later` on a future the test completes (as the
    controller's ``text`` does with its commit)."""

    def __init__(self) -> None:
        self.gates: list[asyncio.Future[None]] = []

    @rpc_method
    async def later(self, value: Any) -> Any:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        return Later(gate, value)

    @rpc_method(resumable=True)
    async def park_then_later(self, value: Any) -> Any:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        await gate
        return await self.later(value)


@pytest.fixture
async def deferring() -> Any:
    broker = LocalBroker(roundtrip=True)
    server, client = broker.transport("server"), broker.transport("client")
    handler = Deferring()
    await server.serve("later", handler)
    yield client, handler
    await client.close()
    await server.close()


async def test_a_later_answer_is_awaited_for_a_call(deferring: Any) -> None:
    client, handler = deferring
    call = asyncio.create_task(client.call("later", "later", {"value": [1]}))
    await wait_until(lambda: handler.gates, what="the handler's answer")
    assert not call.done()
    handler.gates[0].set_result(None)
    assert await call == [1]
    failing = asyncio.create_task(client.call("later", "later", {"value": 2}))
    await wait_until(lambda: len(handler.gates) == 2, what="the second answer")
    handler.gates[1].set_exception(ServiceError("not_durable", "lost"))
    with pytest.raises(RpcRemoteError) as info:
        await failing
    assert info.value.code == "not_durable"


async def test_call_then_tells_a_later_answer_from_its_futures_callback(deferring: Any) -> None:
    client, handler = deferring
    tasks_before = len(asyncio.all_tasks())
    then = Outcomes()
    client.call_then("later", "later", {"value": [1, "two"]}, then)
    assert len(handler.gates) == 1 and then.told == []
    assert len(asyncio.all_tasks()) == tasks_before and _waiting(client) == 1  # no coroutine; its deadline
    handler.gates[0].set_result(None)
    await wait_until(lambda: then.told, what="the outcome")
    assert then.told == [([1, "two"], None)] and _waiting(client) == 0
    client.call_then("later", "later", {"value": 3}, then)
    handler.gates[1].set_exception(ServiceError("not_durable", "lost"))
    await wait_until(lambda: len(then.told) == 2, what="the failure")
    result, error = then.told[1]
    assert result is None and isinstance(error, RpcRemoteError) and error.code == "not_durable"


async def test_call_then_of_a_later_that_fails_unexpectedly_tells_internal_and_logs_it(
        deferring: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, handler = deferring
    then = Outcomes()
    client.call_then("later", "later", {"value": 1}, then)
    handler.gates[0].set_exception(RuntimeError("disk on fire"))
    await wait_until(lambda: then.told, what="the failure")
    [(result, error)] = then.told
    assert result is None and isinstance(error, RpcRemoteError) and error.code == "internal"
    assert "disk on fire" not in error.message
    assert any("rpc_handler_failed" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_call_then_of_a_later_answer_times_out_at_the_calls_deadline(deferring: Any) -> None:
    client, handler = deferring
    then = Outcomes()
    client.call_then("later", "later", {"value": 1}, then, timeout=0.05)
    await wait_until(lambda: then.told, what="the timeout")
    [(result, error)] = then.told
    assert result is None and isinstance(error, RpcTimeout)
    handler.gates[0].set_result(None)  # done after all: nobody is told twice
    await asyncio.sleep(0.01)
    assert len(then.told) == 1 and _waiting(client) == 0


async def test_calls_begun_close_together_share_one_deadline_timer(deferring: Any) -> None:
    """No timer (or heap entry) per call: the calls of one timeout begun within the slack share
    one deadline, and each times out no earlier than its own."""
    client, handler = deferring
    loop = asyncio.get_running_loop()
    then = Outcomes()
    begun = loop.time()
    for value in range(20):
        client.call_then("later", "later", {"value": value}, then, timeout=0.2)
    assert len(client._open_deadlines) == 1 and _waiting(client) == 20
    handler.gates[3].set_result(None)
    await wait_until(lambda: then.told, what="one answer")
    assert then.told == [(3, None)] and _waiting(client) == 19
    await wait_until(lambda: len(then.told) == 20, what="the timeouts")
    assert loop.time() - begun >= 0.2
    assert all(isinstance(error, RpcTimeout) for _, error in then.told[1:]) and _waiting(client) == 0


async def test_a_later_after_a_resumed_handler_keeps_the_calls_first_deadline(deferring: Any) -> None:
    client, handler = deferring
    loop = asyncio.get_running_loop()
    then = Outcomes()
    begun = loop.time()
    client.call_then("later", "park_then_later", {"value": 1}, then, timeout=0.3)
    await asyncio.sleep(0.2)
    handler.gates[0].set_result(None)  # it answers with a Later now: no new 0.3 s from here
    await wait_until(lambda: then.told, what="the timeout")
    assert isinstance(then.told[0][1], RpcTimeout) and loop.time() - begun < 0.45
