"""The test support's port picker: xdist workers never hand out the same port."""

from __future__ import annotations

import socket

import pytest

from tests.support import processes


@pytest.mark.parametrize("count", [1, 2, 3])
def test_each_xdist_worker_gets_its_own_share_of_ports(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))
    shares = []
    for index in range(count):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
        shares.append(set(processes._worker_ports()))
    assert all(shares)
    assert len(set().union(*shares)) == sum(len(s) for s in shares)
    low, high = processes._PORT_RANGE
    assert all(low <= p < high for share in shares for p in share)


def test_a_port_comes_back_only_after_the_whole_share_was_handed_out() -> None:
    cursor = processes._PortCursor(range(processes._PORT_RANGE[0], processes._PORT_RANGE[0] + 40))
    handed = [cursor.take(1) for _ in range(40)]
    assert len(set(handed)) == 40
    assert cursor.take(1) in handed


def test_a_port_something_listens_on_is_skipped() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        busy.listen()
        if not processes.bindable(port + 1):
            pytest.skip("the port after the busy one is taken too")
        cursor = processes._PortCursor(range(port, port + 2))
        cursor.next = 0
        assert cursor.take(1) == port + 1
