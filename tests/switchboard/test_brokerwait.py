"""``switchboard up --broker``'s wait for the broker (:mod:`switchboard.brokerwait`), on a fake clock:
one "waiting" line, a bounded wait, and a broker told apart from something else on the port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from switchboard.brokerwait import BrokerUnreachable, broker_address, probe_broker, wait_for_broker
from tests.support.processes import free_port


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def answering() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A listener whose first accepted connection gets the bytes in the list, after the client's header."""
    server = socket.create_server(("127.0.0.1", 0))
    reply: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.recv(8)
            conn.sendall(reply[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server, reply
    server.close()
    thread.join(5)


def test_no_broker_gives_up_after_the_bound_having_said_so_once() -> None:
    clock, said = _Clock(), list[str]()
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    with pytest.raises(BrokerUnreachable, match=r"no broker at <url> after 2.5 s \(Connection refused\)"):
        wait_for_broker(url, wait=2.5, interval=1, say=said.append, shown_url="<url>", clock=clock, sleep=clock.sleep)
    assert len(said) == 1 and said[0].startswith("waiting for the broker at <url>")
    assert sum(clock.slept) == 2.5 and all(s <= 1 for s in clock.slept)


def test_a_broker_that_answers_ends_the_wait_at_once(answering: tuple[socket.socket, list[bytes]]) -> None:
    server, reply = answering
    reply.append(b"\x01\x00\x00")  # the start of connection.start: a method frame
    clock, said = _Clock(), list[str]()
    wait_for_broker(f"amqp://127.0.0.1:{server.getsockname()[1]}/", wait=5, interval=1, say=said.append,
                    shown_url="x", clock=clock, sleep=clock.sleep)
    assert said == [] and clock.slept == []


def test_something_else_on_the_port_is_named(answering: tuple[socket.socket, list[bytes]]) -> None:
    server, reply = answering
    reply.append(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert probe_broker("127.0.0.1", server.getsockname()[1], timeout=5) == (
        "something answers there, but not an AMQP 0-9-1 broker")


def test_broker_addresses() -> None:
    assert broker_address("amqp://u:p@rabbit.example:5673/vhost") == ("rabbit.example", 5673)
    assert broker_address("amqp://rabbit") == ("rabbit", 5672)
    assert broker_address("amqps://rabbit/") == ("rabbit", 5671)
    with pytest.raises(BrokerUnreachable, match="amqp://"):
        broker_address("http://rabbit/")


def test_one_answering_node_of_a_cluster_ends_the_wait(answering: tuple[socket.socket, list[bytes]]) -> None:
    server, reply = answering
    reply.append(b"\x01\x00\x00")
    clock, said = _Clock(), list[str]()
    url = f"amqp://127.0.0.1:{free_port()}/,amqp://127.0.0.1:{server.getsockname()[1]}/"
    wait_for_broker(url, wait=5, interval=1, say=said.append, shown_url="x", clock=clock, sleep=clock.sleep)
    assert said == [] and clock.slept == []
