"""The OpenAPI document (``GET /v1/openapi.json``) against the live token API of a real embedded server.

- Every route the application serves is in the document, and nothing else is.
- A property-based contract run (schemathesis): for every operation, a fixed number of generated
  requests, valid and invalid, each answered with a documented status, content type, headers and
  body schema (error bodies included), never a 500; valid input taken, invalid input refused, and
  credentials needed where the document says so.

The server runs in a thread of its own (schemathesis calls it with blocking ``requests``).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from switchboard.client import Client, ClientSettings
from switchboard.config import load_settings
from switchboard.wiring import EmbeddedCluster
from token_api.dashboard import COOKIE, CSRF_HEADER

#: Examples per operation: enough to reach every answer of most operations, few enough that the whole
#: run stays well under a minute on a loaded 2-core machine.
EXAMPLES = 25

#: Seconds a generated request may take (a hang fails the run instead of stalling it).
CALL_TIMEOUT = 10.0

#: The room the run keeps a participant in (the example room id of the document).
LIVE_ROOM = "lobby"

#: Operations generated requests cannot be sent to, and why.
NOT_FUZZED = {
    # With a session it streams until the client goes away (never a whole answer to validate):
    # test_the_event_stream_answers_as_documented checks its status and headers instead.
    "GET /dashboard/events",
}

#: Operations where a request the schema allows may still be refused as invalid (400), and why; every
#: other check still applies to them.
STATEFUL_VALIDITY = {
    # ``role`` must be a role of the room, ``user`` non-empty and at most ``max_user_length`` (a setting)
    # unless MAuth signs both: no static schema can say which bodies a room takes.
    "POST /token": "role must be a role of the room",
    "POST /v1/rooms/{room}/tokens": "role must be a role of the room",
    # Role names and view labels must be unique within the room: JSON Schema cannot say "unique by
    # one property" (the document says everything else: bounds, labels, participantLimit ≠ 0).
    "POST /v1/rooms": "unique role names and view labels",
    "PUT /v1/rooms/{room}": "unique role names and view labels",
    "PATCH /v1/rooms/{room}": "unique role names and view labels",
}


#: The run's configuration (never one found on disk).  Invalid input must be refused with one of these
#: (schemathesis's list, plus 413: a body too large for ``client_max_size`` is refused before it is read).
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]}}})


class ServerThread:
    """An :class:`EmbeddedCluster` running on an event loop of its own thread."""

    def __init__(self, tmp_path: Path) -> None:
        settings = load_settings(env={}, overrides={
            "rpc": {"local_roundtrip": True},
            "token_api": {
                "host": "127.0.0.1", "port": 0, "rooms_db": str(tmp_path / "rooms.sqlite3"),
                # Generated requests without or with wrong credentials must not lock the test's
                # own address out (429 for everything after): they are checked, not limited.
                "auth_failure_limit": 1_000_000,
                "dashboard": {"logins_per_address_burst": 1_000_000},
            },
            "portal": {"host": "127.0.0.1", "port": 0, "hostname": "127.0.0.1"},
        })
        self.cluster = EmbeddedCluster(settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="token-api-under-test", daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.cluster.start(), self.loop).result(timeout=60)

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.cluster.stop(), self.loop).result(timeout=60)
            asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self.loop).result(timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=60)
            self.loop.close()


async def _cancel_the_rest() -> None:
    """Cancel what is left on the loop (a dropped client's pings), so that it closes clean."""
    rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerThread]:
    server = ServerThread(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _document(server: ServerThread) -> dict[str, Any]:
    response = requests.get(f"{server.cluster.api_url}/v1/openapi.json", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def _dashboard_session(server: ServerThread) -> tuple[dict[str, str], dict[str, str]]:
    """Log in to the status page: the cookie, and the headers a page POST carries (its CSRF token)."""
    api = server.cluster.api_url
    login = requests.post(f"{api}/dashboard/login", data={"admin_key": server.cluster.admin_key},
                          allow_redirects=False, timeout=10)
    assert login.status_code == 303, login.text
    cookie = login.cookies.get(COOKIE)
    assert cookie is not None
    cookies = {COOKIE: cookie}
    page = requests.get(f"{api}/dashboard", cookies=cookies, timeout=10)
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert page.status_code == 200 and found is not None
    return cookies, {CSRF_HEADER: found.group(1)}


def test_the_document_has_every_route_of_the_application_and_no_other(served: ServerThread) -> None:
    document = _document(served)
    assert document["openapi"].startswith("3.1")
    in_document = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    app = served.cluster.token_api.app
    # aiohttp answers HEAD for every GET on its own (the document says so once, in its description).
    served_routes = {(route.method, route.resource.canonical) for route in app.router.routes()
                     if route.method != "HEAD" and route.resource is not None}
    assert served_routes == in_document
    # The management API, the status page and the admin relay are there, as wiring.py mounts them.
    assert {("GET", "/v1/rooms/{room}/participants"), ("POST", "/admin/rpc"), ("GET", "/dashboard/events"),
            ("GET", "/v1/openapi.json"), ("GET", "/metrics")} <= in_document


def test_the_document_describes_bodies_with_the_handlers_structs(served: ServerThread) -> None:
    """A body the handler's Struct takes has the Struct's fields in the document: e.g. ``POST
    /v1/rooms`` takes ``{name, options, id}``, and the answer of a room has OWT's ``_id``."""
    document = _document(served)
    schemas = document["components"]["schemas"]
    create = document["paths"]["/v1/rooms"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create == {"$ref": "#/components/schemas/CreateRoom"}
    assert set(schemas["CreateRoom"]["properties"]) == {"name", "options", "id"}
    assert "_id" in schemas["RoomAnswer"]["required"]
    # JSON Schema patterns are ECMA regular expressions: Python's \A and \Z do not appear.
    assert "\\A" not in str(document) and "\\Z" not in str(document)
    # What the Structs check beyond their field types, the document says too.
    assert schemas["RoomOptions"]["properties"]["views"]["items"]["required"] == ["label"]
    assert schemas["RoomOptions"]["properties"]["participantLimit"]["not"] == {"const": 0}
    patch = document["paths"]["/v1/rooms/{room}/participants/{participant}"]["patch"]["requestBody"]
    assert patch["required"] and len(patch["content"]["application/json"]["schema"]["items"]["oneOf"]) == 2
    # An empty body counts as {}: required where {} is not a valid body.
    assert document["paths"]["/v1/rooms"]["post"]["requestBody"]["required"] is True
    assert document["paths"]["/v1/rooms/{room}"]["put"]["requestBody"]["required"] is False
    static = document["paths"]["/dashboard/static/{name}"]["get"]["parameters"][0]["schema"]
    assert static == {"enum": ["dashboard.css", "dashboard.js"]}
    assert "\\ud800" not in str(document)  # no request can carry a lone surrogate
    error = document["paths"]["/v1/rooms/{room}"]["get"]["responses"]["404"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message", "reason"}


def test_a_whole_number_written_as_a_float_is_an_integer(served: ServerThread) -> None:
    """JSON Schema's ``integer`` takes ``5.0``: so does every body the document says has one."""
    api, headers = served.cluster.api_url, served.cluster.service_headers
    assert requests.post(f"{api}/v1/rooms", json={"name": "r", "id": "r"}, headers=headers, timeout=10).ok
    for given, status in ((5.0, 200), (-1.0, 200), (5.5, 400), (0.0, 400), ("5", 400)):
        answer = requests.put(f"{api}/v1/rooms/r", json={"participantLimit": given}, headers=headers, timeout=10)
        assert answer.status_code == status, (given, answer.text)
        if status == 200:
            assert answer.json()["participantLimit"] == int(given)
            assert type(answer.json()["participantLimit"]) is int


def test_an_empty_body_counts_as_an_empty_object(served: ServerThread) -> None:
    """``requestBody.required`` is false exactly where ``{}`` is a valid body: no body is ``{}``."""
    api, headers = served.cluster.api_url, served.cluster.service_headers
    refused = requests.post(f"{api}/v1/rooms", headers=headers, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["reason"] == "invalid_body"
    assert requests.post(f"{api}/v1/rooms", json={"name": "e", "id": "e"}, headers=headers, timeout=10).ok
    assert requests.put(f"{api}/v1/rooms/e", headers=headers, timeout=10).json()["name"] == "e"


def test_the_event_stream_answers_as_documented(served: ServerThread) -> None:
    cookies, _ = _dashboard_session(served)
    documented = _document(served)["paths"]["/dashboard/events"]["get"]["responses"]
    with requests.get(f"{served.cluster.api_url}/dashboard/events", cookies=cookies, stream=True, timeout=10) as live:
        assert live.status_code == 200 and "text/event-stream" in documented["200"]["content"]
        assert live.headers["Content-Type"].startswith("text/event-stream")
    anonymous = requests.get(f"{served.cluster.api_url}/dashboard/events", timeout=10)
    assert anonymous.status_code == 401 and "application/json" in documented["401"]["content"]


def _live_participant(server: ServerThread) -> Client:
    """A participant in the room ``LIVE_ROOM``, so that the management API answers with real data."""
    async def join() -> Client:
        return await Client.join(server.cluster.api_url, api_headers=server.cluster.service_headers, room=LIVE_ROOM,
                                 user="alice", role="presenter", settings=ClientSettings(request_timeout=10.0))
    return asyncio.run_coroutine_threadsafe(join(), server.loop).result(timeout=60)


#: Deletions after the rest (a dropped participant or a deleted room answers nothing else), the live room
#: itself last of them; the logout last of all (it ends the session of the other status page operations).
_LAST = {"DELETE /v1/rooms/{room}/participants/{participant}": 1, "DELETE /v1/rooms/{room}/streams/{stream}": 1,
         "DELETE /v1/rooms/{room}": 2, "POST /dashboard/logout": 3}


def _valid_at(case: schemathesis.Case[Any], location: ParameterLocation) -> bool:
    component = case.meta.components.get(location) if case.meta is not None else None
    return component is None or component.mode is not GenerationMode.NEGATIVE


def test_the_live_api_keeps_the_contract_of_its_document(served: ServerThread) -> None:
    api = served.cluster.api_url
    schema = schemathesis.openapi.from_dict(_document(served), config=CONFIG)
    cookies, csrf = _dashboard_session(served)
    service = served.cluster.service_headers
    admin = served.cluster.admin_headers
    participant = _live_participant(served)
    live = {"room": LIVE_ROOM, "participant": participant.id}
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    operations.sort(key=lambda op: _LAST.get(op.label, 0))
    # Half the cases of these carry a body that works (a role the room has, an admin method, the admin
    # key): generated ones are almost always refused.
    bodies = {
        "POST /token": {"room": LIVE_ROOM, "user": "bob", "role": "presenter"},
        "POST /v1/rooms/{room}/tokens": {"user": "bob", "role": "viewer"},
        "POST /admin/rpc": {"method": "status", "args": {}},
        "POST /dashboard/login": {"admin_key": served.cluster.admin_key},
    }
    fuzzed = [op for op in operations if op.label not in NOT_FUZZED]
    assert len(fuzzed) == len(operations) - len(NOT_FUZZED)
    session = requests.Session()
    # The credentials are the test's to give or leave out: cookies set by answers (a login) are not kept.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    failures: list[str] = []
    for operation in fuzzed:
        if operation.path.startswith("/dashboard"):
            headers, jar = csrf, cookies
        elif operation.path == "/admin/rpc":
            headers, jar = admin, {}
        else:
            headers, jar = service, {}

        excluded: list[CheckFunction] = [positive_data_acceptance] if operation.label in STATEFUL_VALIDITY else []

        # Half the cases name the live room (and its participant) where the path has them: random ids
        # alone would only ever find 404.
        pinned: dict[str, Any] = {"path_parameters": {name: value for name, value in live.items()
                                                      if f"{{{name}}}" in operation.path}}
        if operation.label in bodies:
            pinned["body"] = bodies[operation.label]
        cases = st.one_of(operation.as_strategy(), operation.as_strategy(**pinned),
                          operation.as_strategy(GenerationMode.NEGATIVE, **pinned))

        @given(case=cases)
        @hypothesis.settings(max_examples=EXAMPLES, derandomize=True, deadline=timedelta(seconds=CALL_TIMEOUT * 2),
                             database=None,
                             phases=(Phase.explicit, Phase.generate),
                             suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case[Any]) -> None:
            # A case made invalid where the credentials go (e.g. without the cookie) is sent as made.
            case.call_and_validate(base_url=api, session=session, timeout=CALL_TIMEOUT,
                                   headers=headers if _valid_at(case, ParameterLocation.HEADER) else None,
                                   cookies=jar if _valid_at(case, ParameterLocation.COOKIE) else None,
                                   excluded_checks=excluded)

        try:
            check()
        except (Exception, FailureGroup) as exc:  # every operation runs; all failures are reported at once
            failures.append(f"{operation.label}: {exc}")
    asyncio.run_coroutine_threadsafe(participant.close(), served.loop).result(timeout=30)
    assert not failures, "\n\n".join(failures)
