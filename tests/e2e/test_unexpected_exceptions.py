"""An exception nothing expected, in an HTTP handler or an RPC handler of a running server: logged
once (one JSON line, with the request's ids and the traceback) and counted on ``/metrics``
(``switchboard_unhandled_exceptions_total{component}``; docs/operations.md, *Logs*)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventlog import configure_logging
from rpc import RpcRemoteError
from switchboard.client import Client
from tests.conftest import JsonLines, MakeEmbedded
from token_api import rooms_service_name
from token_api.store_sqlite import SqliteRoomStore


async def _unhandled(api_url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{api_url}/metrics") as response:
        text = await response.text()
    return {sample.labels["component"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "switchboard_unhandled_exceptions_total"}


async def _broken(*args: Any) -> Any:
    raise ZeroDivisionError("a bug in the room store")


async def test_a_handler_exception_is_logged_once_with_its_request_and_counted(
    make_embedded: MakeEmbedded, json_lines: JsonLines, monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging("info", json_lines=True)  # here: the handler writes to this phase's captured stderr
    server = await make_embedded()
    api, headers = server.api_url, server.service_headers
    known = await Client.join(api, api_headers=headers, room="known", user="alice", role="presenter")
    await known.leave()
    before = await _unhandled(api)
    json_lines()

    # The room store breaks (a bug, not an outage): a token request for a new room hits it over HTTP...
    monkeypatch.setattr(SqliteRoomStore, "get", _broken)
    monkeypatch.setattr(SqliteRoomStore, "get_or_create", _broken)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/token", headers=headers,
                             json={"room": "new", "user": "bob", "role": "presenter"}) as response:
            assert response.status == 500
            request_id = response.headers["X-Request-Id"]
    errors = [line for line in json_lines() if line["level"] == "error"]
    assert [(e["logger"], e["event"], e.get("method"), e.get("path")) for e in errors] == [
        ("switchboard.token_api", "request_failed", "POST", "/token")]
    assert errors[0]["request"] == request_id and "ZeroDivisionError: a bug in the room store" in errors[0]["exc"]
    after_http = await _unhandled(api)
    assert after_http["token_api"] == before["token_api"] + 1

    # ... and over RPC, the rooms service a controller loads a room from.
    caller = server.broker.transport("tests-caller")
    try:
        with pytest.raises(RpcRemoteError) as refused:
            await caller.call(rooms_service_name(server.settings.worker.cluster_name), "get_room", {"room": "known"})
    finally:
        await caller.close()
    assert refused.value.code == "internal"
    errors = [line for line in json_lines() if line["level"] == "error"]
    assert [(e["logger"], e["event"], e.get("method"), e.get("sender")) for e in errors] == [
        ("switchboard.rpc", "rpc_handler_failed", "get_room", "tests-caller")]
    assert "ZeroDivisionError" in errors[0]["exc"]
    assert (await _unhandled(api))["rpc"] == after_http["rpc"] + 1
