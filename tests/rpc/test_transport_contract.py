"""One contract, both transports: calls, casts, timeouts, errors, competing consumers, events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from rpc import RpcNoService, RpcRemoteError, RpcTimeout, RpcUnavailable, ServiceError, rpc_method
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until


class Echo:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self.casts: list[Any] = []
        self.calls = 0
        self.sleeping = 0

    @rpc_method
    async def echo(self, value: Any) -> Any:
        self.calls += 1
        return value

    @rpc_method
    async def whoami(self) -> str:
        self.calls += 1
        await asyncio.sleep(0.01)
        return self.name

    @rpc_method
    async def slow(self, seconds: float) -> str:
        self.sleeping += 1
        await asyncio.sleep(seconds)
        return "done"

    @rpc_method
    async def fail_coded(self) -> None:
        raise ServiceError("no_worker_available", "nothing to schedule on")

    @rpc_method
    async def crash(self) -> None:
        raise ZeroDivisionError("secret internal detail")

    @rpc_method
    async def remember(self, item: Any) -> None:
        self.casts.append(item)

    @rpc_method
    async def not_json(self) -> Any:
        return object()

    async def hidden(self) -> str:  # not an rpc_method: not callable remotely
        return "hidden"

    @rpc_method
    async def fail_with_details(self) -> None:
        raise ServiceError("resync_required", "missing 3..5", {"missing_from": 3, "missing_to": 5})

    @rpc_method
    async def place(self, spot: Spot, count: int = 1, tags: list[str] | None = None) -> dict[str, Any]:
        self.calls += 1
        assert isinstance(spot, Spot)  # converted from the wire's mapping before the method runs
        return {"spot": spot, "count": count, "tags": tags}


class Spot(msgspec.Struct, forbid_unknown_fields=True):
    x: int
    label: str = ""


def _name(prefix: str = "svc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_a_call_returns_the_handlers_result(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    payload = {"text": "hello", "n": [1, 2.5, None, True], "nested": {"a": "b"}}
    assert await client.call(name, "echo", {"value": payload}) == payload


async def test_the_serving_transport_is_told_how_long_each_known_method_took(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    handled: list[tuple[str, float]] = []
    server.on_handled = lambda method, seconds: handled.append((method, seconds))
    client.on_handled = lambda method, seconds: pytest.fail("the calling side measures nothing")
    name = _name()
    await server.serve(name, Echo())
    await client.call(name, "echo", {"value": 1})
    await client.call(name, "slow", {"seconds": 0.05})
    with pytest.raises(RpcRemoteError):
        await client.call(name, "crash")
    with pytest.raises(RpcRemoteError):
        await client.call(name, "no_such_method")  # an unknown name makes no series of its own
    assert [method for method, _ in handled] == ["echo", "slow", "crash"]
    assert all(seconds >= 0 for _, seconds in handled)


async def test_a_call_to_an_unknown_service_is_unavailable(transports: TransportFactory) -> None:
    client = await transports.make()
    with pytest.raises(RpcNoService):  # delivered to no one: the caller may make it again elsewhere
        await client.call(_name("nobody"), "echo", {"value": 1}, timeout=2)


async def test_an_unknown_method_is_a_remote_error_with_its_code(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    with pytest.raises(RpcRemoteError) as info:
        await client.call(name, "no_such_method")
    assert info.value.code == "unknown_method"
    with pytest.raises(RpcRemoteError) as info:
        await client.call(name, "hidden")
    assert info.value.code == "unknown_method"


async def test_bad_arguments_are_a_remote_error(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    with pytest.raises(RpcRemoteError) as info:
        await client.call(name, "echo", {"wrong": 1})
    assert info.value.code == "bad_arguments"


async def test_arguments_are_converted_to_the_methods_annotations_or_refused_unrun(
        transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name, echo = _name(), Echo()
    await server.serve(name, echo)
    assert await client.call(name, "place", {"spot": {"x": 1}}) == {"spot": {"x": 1, "label": ""}, "count": 1,
                                                                     "tags": None}
    assert await client.call(name, "place", {"spot": {"x": 2, "label": "b"}, "tags": ["t"]}) == {
        "spot": {"x": 2, "label": "b"}, "count": 1, "tags": ["t"]}
    refused: list[tuple[dict[str, Any], str]] = [
        ({"spot": {"x": "1"}}, "Expected `int`, got `str` - at `$.spot.x`"),
        ({"spot": {"x": 1, "y": 2}}, "Object contains unknown field `y` - at `$.spot`"),
        ({"spot": {"x": 1}, "count": True}, "Expected `int`, got `bool` - at `$.count`"),
        ({"spot": {"x": 1}, "tags": [1]}, "Expected `str`, got `int` - at `$.tags[0]`"),
        ({"count": 1}, "missing spot; expected spot, count, tags"),
        ({"spot": {"x": 1}, "colour": 1}, "unknown argument(s) colour; expected spot, count, tags")]
    for args, why in refused:
        with pytest.raises(RpcRemoteError) as info:
            await client.call(name, "place", args)
        assert (info.value.code, info.value.message) == ("bad_arguments", f"{name}.place: {why}")
    assert echo.calls == 2


async def test_a_coded_handler_error_keeps_its_details(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    with pytest.raises(RpcRemoteError) as info:
        await client.call(name, "fail_with_details")
    assert (info.value.code, info.value.details) == ("resync_required", {"missing_from": 3, "missing_to": 5})
    with pytest.raises(RpcRemoteError) as info:
        await client.call(name, "fail_coded")
    assert info.value.details is None


async def test_a_coded_handler_error_keeps_its_code_and_message(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    with pytest.raises(RpcRemoteError) as info:
        await client.call(name, "fail_coded")
    assert (info.value.code, info.value.message) == ("no_worker_available", "nothing to schedule on")


async def test_a_crashing_handler_is_internal_and_its_detail_stays_on_the_server(
    transports: TransportFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    with pytest.raises(RpcRemoteError) as info:
        await client.call(name, "crash")
    assert info.value.code == "internal"
    assert "secret" not in info.value.message
    assert "ZeroDivisionError" in caplog.text  # the traceback is logged where it happened


async def test_an_unserialisable_result_is_an_error_not_a_hang(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    with pytest.raises(RpcRemoteError) as info:
        await client.call(name, "not_json", timeout=2)
    assert info.value.code == "internal"


async def test_a_slow_handler_times_out_with_rpc_timeout(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    with pytest.raises(RpcTimeout) as info:
        await client.call(name, "slow", {"seconds": 60.0}, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    # the caller gave up on its own timeout (the handler would still be sleeping for a minute)
    assert info.value.message == f"{name}.slow did not answer within 0.3 s"
    # the transport is still usable afterwards
    assert await client.call(name, "echo", {"value": 7}) == 7


async def test_every_call_has_a_default_timeout(transports: TransportFactory) -> None:
    server = await transports.make()
    client = await transports.make(call_timeout=0.3)
    name = _name()
    await server.serve(name, Echo())
    with pytest.raises(RpcTimeout):
        await client.call(name, "slow", {"seconds": 2.0})


async def test_concurrent_calls_get_their_own_replies(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    await server.serve(name, Echo())
    results = await asyncio.gather(*(client.call(name, "echo", {"value": i}) for i in range(200)))
    assert results == list(range(200))


async def test_a_cast_reaches_the_handler_without_a_reply(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    handler = Echo()
    await server.serve(name, handler)
    # ``cast`` is declared ``-> None``; seen as returning ``object``, its actual result can be checked.
    send_cast: Callable[[str, str, dict[str, Any] | None], Awaitable[object]] = client.cast
    assert await send_cast(name, "remember", {"item": {"k": 1}}) is None
    await client.cast(name, "remember", {"item": 2})
    await wait_until(lambda: len(handler.casts) == 2)
    assert handler.casts == [{"k": 1}, 2]


async def test_a_cast_to_an_unknown_service_is_unavailable(transports: TransportFactory) -> None:
    client = await transports.make()
    with pytest.raises(RpcUnavailable):
        await client.cast(_name("nobody"), "remember", {"item": 1})


async def test_servers_of_one_name_share_the_calls(transports: TransportFactory) -> None:
    name = _name("shared")
    a, b = Echo("a"), Echo("b")
    await (await transports.make()).serve(name, a)
    await (await transports.make()).serve(name, b)
    client = await transports.make()
    answers = await asyncio.gather(*(client.call(name, "whoami") for _ in range(60)))
    assert set(answers) == {"a", "b"}
    assert a.calls + b.calls == 60


async def test_a_per_process_name_reaches_exactly_that_process(transports: TransportFactory) -> None:
    shared = _name("shared")
    one, two = await transports.make("worker-1-" + shared), await transports.make("worker-2-" + shared)
    await one.serve(shared, Echo("one"))
    await two.serve(shared, Echo("two"))
    await one.serve(one.node_id, Echo("one"))
    await two.serve(two.node_id, Echo("two"))
    client = await transports.make()
    for _ in range(10):
        assert await client.call(two.node_id, "whoami") == "two"
        assert await client.call(one.node_id, "whoami") == "one"


async def test_a_stopped_service_is_unavailable(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    handle = await server.serve(name, Echo())
    assert await client.call(name, "echo", {"value": 1}) == 1
    await handle.stop()
    with pytest.raises(RpcNoService) as info:
        await client.call(name, "echo", {"value": 1}, timeout=60)
    assert info.value.message == f"no service {name!r}"


async def test_a_closed_server_fails_calls_instead_of_hanging(transports: TransportFactory) -> None:
    server, client = await transports.make(), await transports.make()
    name = _name()
    handler = Echo()
    await server.serve(name, handler)
    # a timeout of a minute: only the documented fast failure can end this call within the test
    call = asyncio.create_task(client.call(name, "slow", {"seconds": 60}, timeout=60))
    await wait_until(lambda: handler.sleeping == 1, what="the handler to be running")
    await server.close()
    with pytest.raises(RpcUnavailable) as info:
        await asyncio.wait_for(call, 30)
    assert info.value.message == f"{name} went away during slow"
    assert not isinstance(info.value, RpcNoService)  # it was delivered: not to be made again blindly
    with pytest.raises(RpcUnavailable):
        await client.call(name, "echo", {"value": 1}, timeout=60)


async def test_events_reach_every_matching_subscriber(transports: TransportFactory) -> None:
    a, b, publisher = await transports.make(), await transports.make(), await transports.make()
    prefix = _name("ev")
    got_a: list[tuple[str, Any]] = []
    got_b: list[tuple[str, Any]] = []

    async def on_a(topic: str, payload: Any) -> None:
        got_a.append((topic, payload))

    async def on_b(topic: str, payload: Any) -> None:
        got_b.append((topic, payload))

    await a.subscribe_events(f"{prefix}.exit.#", on_a)
    await b.subscribe_events(f"{prefix}.exit.quit", on_b)
    await publisher.publish_event(f"{prefix}.exit.quit", {"purpose": "portal", "id": "p1", "type": "worker"})
    await publisher.publish_event(f"{prefix}.exit.abnormal", {"id": "n1"})
    await publisher.publish_event(f"{prefix}.other", {"id": "x"})
    # a last event both patterns match: once each subscriber has it, the events published before it
    # have been routed, so whatever else each one got is already in its list
    await publisher.publish_event(f"{prefix}.exit.quit", "end")
    await wait_until(lambda: got_a[-1:] == got_b[-1:] == [(f"{prefix}.exit.quit", "end")])
    assert sorted(t for t, _ in got_a[:-1]) == [f"{prefix}.exit.abnormal", f"{prefix}.exit.quit"]
    assert got_b[:-1] == [(f"{prefix}.exit.quit", {"purpose": "portal", "id": "p1", "type": "worker"})]


async def test_a_cancelled_subscription_gets_nothing_more(transports: TransportFactory) -> None:
    sub_side, publisher = await transports.make(), await transports.make()
    topic = _name("ev") + ".exit.quit"
    got: list[Any] = []

    async def on_event(_topic: str, payload: Any) -> None:
        got.append(payload)

    sub = await sub_side.subscribe_events(topic, on_event)
    await publisher.publish_event(topic, 1)
    await wait_until(lambda: got == [1])
    witnessed: list[Any] = []

    async def witness(_topic: str, payload: Any) -> None:
        witnessed.append(payload)

    await sub_side.subscribe_events(topic, witness)
    await sub.cancel()
    await publisher.publish_event(topic, 2)
    # another subscription of the same process got event 2: it was routed, and not to the cancelled one
    await wait_until(lambda: witnessed == [2])
    assert got == [1]


async def test_a_failing_event_handler_does_not_stop_later_events(transports: TransportFactory) -> None:
    sub_side, publisher = await transports.make(), await transports.make()
    topic = _name("ev") + ".exit.quit"
    got: list[Any] = []

    async def on_event(_topic: str, payload: Any) -> None:
        got.append(payload)
        if payload == 1:
            raise RuntimeError("handler bug")

    await sub_side.subscribe_events(topic, on_event)
    await publisher.publish_event(topic, 1)
    await publisher.publish_event(topic, 2)
    await wait_until(lambda: got == [1, 2])


async def test_a_closed_transport_refuses_to_call(transports: TransportFactory) -> None:
    client = await transports.make()
    await client.close()
    with pytest.raises(RpcUnavailable):
        await client.call("anything", "echo", {"value": 1})


async def test_a_closed_transport_cannot_be_started_again(transports: TransportFactory) -> None:
    client = await transports.make()
    await client.start()  # idempotent while open
    await client.close()
    with pytest.raises(RuntimeError, match="was closed; make a new one"):
        await client.start()
