"""What only the in-process transport does: handlers start at once in the caller's turn and go on
as tasks of the serving side when they suspend, with the broker's semantics kept."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from rpc import RpcRemoteError, RpcTimeout, RpcUnavailable, ServiceError, rpc_method
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
