"""Logs escape what they print: a hostile value cannot forge a line or reorder one, in text or JSON."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import aiohttp
import pytest

from portal.logs import EventLog
from eventlog import configure_logging
from tests.conftest import MakeEmbedded

FORGED = "/v1/rooms/x%0A12:00:00 info    switchboard.token_api: forged%E2%80%AEevil%1B[2J"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def _fail_authentication(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded()
    async with aiohttp.ClientSession() as session:
        async with session.get(server.api_url + FORGED, headers={"X-Service-Key": "wrong"}) as resp:
            assert resp.status == 401  # logged as auth_failed with the request's path


async def test_a_text_log_line_escapes_control_and_bidi_characters(
        make_embedded: MakeEmbedded, capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("info")
    await _fail_authentication(make_embedded)
    EventLog(room="a\u2066b", user="eve\x00").info("portal_event", note="line\u2028break")
    lines = capsys.readouterr().err.splitlines()
    failed = [line for line in lines if "auth_failed" in line]
    assert len(failed) == 1, lines
    # the path is a field: JSON-quoted (\n, \u001b), then what JSON leaves raw escaped (\u202e)
    assert '\\n12:00:00' in failed[0] and "\\u202eevil\\u001b[2J" in failed[0]
    assert not any(line.startswith("12:00:00 info    switchboard.token_api: forged") for line in lines)
    event = next(line for line in lines if "portal_event" in line)
    assert "\\u2066" in event and "\\u0000" in event and "\\u2028" in event
    for line in lines:
        assert not any(char in line for char in "\x00\x1b\u202e\u2066\u2028"), line


async def test_a_json_log_line_is_one_object_with_the_values_escaped(
        make_embedded: MakeEmbedded, capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("info", json_lines=True)
    await _fail_authentication(make_embedded)
    lines = capsys.readouterr().err.splitlines()
    events = [json.loads(line) for line in lines]  # every line is one whole object
    failed = [event for event in events if "auth_failed" in event["event"]]
    assert len(failed) == 1 and failed[0]["event"] == "auth_failed"
    assert "forged\u202eevil\x1b[2J" in failed[0]["path"]  # a field of its own, bound to the request
    assert all(line.isascii() for line in lines)


def test_a_traceback_keeps_its_lines_but_none_passes_for_an_event(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("info")
    try:
        raise ValueError("bad room\n12:00:00 info    forged: line")
    except ValueError:
        logging.getLogger("switchboard.test").exception("failed room=%s", "x\ny")
    lines = capsys.readouterr().err.splitlines()
    assert "room=x\\x0ay" in lines[0]
    assert all(line.startswith("  ") for line in lines[1:]), lines
