"""The structured logger: fields as fields in JSON, ids bound to a task, unexpected exceptions
logged once and counted, and what the asyncio loop catches itself."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import eventlog
from eventlog import EventLog, bound, configure_logging, log_loop_exceptions
from tests.conftest import JsonLines as Read



class _TestLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.tests"


def _json() -> None:
    configure_logging("info", json_lines=True)  # in the test: its handler writes to this phase's stderr


def test_fields_are_fields_and_bound_ids_come_with_every_event(json_lines: Read) -> None:
    _json()
    log = _TestLog(room="r1").bind(participant="p1")
    with bound(request="q1"):
        log.info("joined", count=2)
    log.info("left")
    joined, left = json_lines()
    assert {k: joined[k] for k in ("level", "logger", "event", "request", "room", "participant", "count")} == {
        "level": "info", "logger": "switchboard.tests", "event": "joined", "request": "q1", "room": "r1",
        "participant": "p1", "count": 2}
    assert left["event"] == "left" and "request" not in left  # the binding ended with its block


def test_a_field_named_like_a_key_of_the_line_does_not_replace_it(json_lines: Read) -> None:
    _json()
    _TestLog().warning("emit_failed", event="text", level=3)
    (line,) = json_lines()
    assert (line["event"], line["event_"], line["level"], line["level_"]) == ("emit_failed", "text", "warning", 3)


async def test_bound_ids_follow_the_task_and_not_its_neighbours(json_lines: Read) -> None:
    _json()
    log = _TestLog()

    async def serve(request: str) -> None:
        with bound(request=request):
            await asyncio.sleep(0)
            log.info("served")

    await asyncio.gather(serve("a"), serve("b"))
    assert sorted(line["request"] for line in json_lines()) == ["a", "b"]


def test_an_unexpected_exception_is_one_line_with_its_traceback_and_is_counted(json_lines: Read) -> None:
    _json()
    before = eventlog.unhandled.counts().get("tests", 0)
    try:
        {"present": 1}["missing"]
    except KeyError:
        _TestLog(room="r1").exception("handler_failed", method="join")
    (line,) = json_lines()
    assert (line["level"], line["event"], line["room"], line["method"]) == ("error", "handler_failed", "r1", "join")
    assert "KeyError: 'missing'" in line["exc"]
    assert eventlog.unhandled.counts()["tests"] == before + 1


async def test_a_task_exception_nobody_retrieved_is_logged_once_and_counted(json_lines: Read) -> None:
    _json()
    log_loop_exceptions(asyncio.get_running_loop())
    before = eventlog.unhandled.counts().get("loop", 0)

    async def broken() -> None:
        raise RuntimeError("nobody awaits me")

    task = asyncio.get_running_loop().create_task(broken(), name="orphan")
    await asyncio.wait([task])
    del task
    gc.collect()  # the task's finaliser tells the loop its exception was never retrieved
    (line,) = [line for line in json_lines() if line["event"] == "loop_exception"]
    assert (line["logger"], line["task"]) == ("switchboard.loop", "orphan")
    assert "RuntimeError: nobody awaits me" in line["exc"]
    assert eventlog.unhandled.counts()["loop"] == before + 1


def test_a_record_names_the_code_that_logged_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.tests")
    log = _TestLog()
    log.debug("a")
    log.log(logging.INFO, "b")
    try:
        raise ValueError("c")
    except ValueError:
        log.exception("c")
    records = [r for r in caplog.records if r.name == "switchboard.tests"]
    assert {(r.filename, r.funcName) for r in records} == {
        ("test_eventlog.py", "test_a_record_names_the_code_that_logged_it")}
