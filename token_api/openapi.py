"""The OpenAPI 3.1 document of the token API's HTTP routes, served at ``GET /v1/openapi.json``.

:data:`OPERATIONS` lists every route the token API process can serve (its own, the management API,
the status page, the admin relay as :mod:`switchboard.wiring` mounts it): method, path, the request
body, query and path parameter types, every answer's status, media type and body type, and who may
call.  The types are the very msgspec Structs the handlers decode and encode with, so their JSON
Schemas (``msgspec.json.schema_components``) are what the document says: a field changed in a
Struct changes the document.  The document holds the operations whose route the application has
(the status page only when it is enabled); ``tests/token_api/test_openapi.py`` fails when the
application has a route no operation describes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import hdrs, web

from contracts.admin_http import AdminAnswer, AdminErrorBody, AdminRequest

from .app_keys import SETTINGS
from .auth import SERVICE_KEY_HEADER
from .dashboard import COOKIE, CSRF_HEADER, LoggedOut, LoginForm, StaticName, WorkerBody
from .dashboard_data import Board
from .errors import ErrorBody
from .health import ReadinessAnswer
from .management import JsonPatch, Participant, PartId, ServerText, Stream, TextSent
from .rooms import CreateRoom, RoomAnswer, RoomId, UpdateRoom
from .routes import Health, RoomsPage
from .tokens import TokenBody, TokenRequest

__all__ = ["OPERATIONS", "OPENAPI_PATH", "Answer", "Auth", "Operation", "openapi_document", "openapi_routes",
           "documented"]

OPENAPI_PATH = "/v1/openapi.json"

JSON = "application/json"
TEXT = "text/plain"
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"


class Auth(enum.Enum):
    """Who may call an operation."""

    #: Nobody needs credentials.
    OPEN = "open"
    #: ``X-Service-Key`` or MAuth (nothing when ``require_service_key`` is off).
    SERVICE = "service"
    #: ``Authorization: Bearer <admin key>``, checked by the cluster manager.
    ADMIN = "admin"
    #: The status page's session cookie.
    SESSION = "session"
    #: The session cookie and its CSRF token (``X-CSRF-Token``).
    SESSION_CSRF = "session_csrf"


@dataclass(frozen=True, slots=True)
class Answer:
    """One documented answer: ``body`` is a type (several: any of them), or ``None`` for no body."""

    status: int
    description: str
    body: Any = None
    media: tuple[str, ...] = (JSON,)
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    summary: str
    answers: tuple[Answer, ...]
    auth: Auth = Auth.OPEN
    body: Any = None
    body_media: str = JSON
    #: A Struct whose fields are the query parameters.
    query: type[msgspec.Struct] | None = None
    #: The type of each ``{name}`` of the path.
    params: Mapping[str, Any] = field(default_factory=dict)
    tag: str = "rooms"


def _error(status: int, description: str, *headers: str) -> Answer:
    return Answer(status, description, ErrorBody, headers=headers)


_BAD = _error(400, "Invalid input (`reason` says which)")
_BODY = (_BAD, _error(408, "The body did not arrive within `body_timeout`"),
         _error(413, "The body is larger than `client_max_size`"))
_AUTH = (_error(401, "No or wrong credentials", "WWW-Authenticate"),
         _error(429, "Too many failed authentications from this address", "Retry-After"))
_ROOM = _error(404, "No such room")
_STORE = _error(503, "The room store cannot be reached now", "Retry-After")
_MINT = (_error(404, "No such room (only a service key may create one by asking a token for it)"),
         _error(429, "Too many failed authentications or tokens from this address", "Retry-After"),
         _error(500, "The portal reservation failed (`scheduling_error`, `portal_without_address`)"),
         _error(503, "No portal can take the client now, or the room store cannot be reached", "Retry-After"))
_LIVE = (_error(404, "No such room, participant or stream"),
         _error(503, "The room's controller cannot be reached now (or the token API has no admin key)", "Retry-After"),
         _error(504, "The room's controller did not answer in time"))
_ROOM_PARAM = {"room": RoomId}
_PARTICIPANT = {"room": RoomId, "participant": PartId}
_STREAM = {"room": RoomId, "stream": PartId}
_TOKEN = Answer(200, "A join token (base64 of JSON) for OWT's `ConferenceClient.join`", str, (TEXT,))
_ROOM_ANSWER = Answer(200, "The room", RoomAnswer)

_REFUSED = (Answer(401, "No session", AdminErrorBody),
            Answer(403, "Another origin, or no CSRF token (`csrf`)", AdminErrorBody))
_MANAGER = (Answer(404, "No such worker (`unknown_worker`)", AdminErrorBody),
            Answer(409, "The cluster manager refused (its code)", AdminErrorBody),
            Answer(415, "The body is not application/json", AdminErrorBody),
            Answer(503, "The cluster manager cannot be reached", AdminErrorBody),
            Answer(504, "The cluster manager did not answer in time", AdminErrorBody))
_PAGE = (HTML,)

#: Every route the token API process can serve.
OPERATIONS: tuple[Operation, ...] = (
    # -- tokens
    Operation("POST", "/token", "Mint a join token", (_TOKEN, *_BODY, *_AUTH[:1], *_MINT), Auth.SERVICE,
              body=TokenRequest, tag="tokens"),
    Operation("POST", "/v1/rooms/{room}/tokens", "Mint a join token for a room (OWT)",
              (_TOKEN, *_BODY, *_AUTH[:1], *_MINT), Auth.SERVICE, body=TokenBody, params=_ROOM_PARAM, tag="tokens"),
    # -- rooms
    Operation("GET", "/v1/rooms", "List rooms in creation order",
              (Answer(200, "One page of rooms", list[RoomAnswer]), _BAD, *_AUTH, _STORE), Auth.SERVICE,
              query=RoomsPage),
    Operation("POST", "/v1/rooms", "Create a room (OWT)",
              (_ROOM_ANSWER, *_BODY, *_AUTH, _error(409, "A room with that id exists"), _STORE), Auth.SERVICE,
              body=CreateRoom),
    Operation("GET", "/v1/rooms/{room}", "A room", (_ROOM_ANSWER, _BAD, *_AUTH, _ROOM, _STORE), Auth.SERVICE,
              params=_ROOM_PARAM),
    Operation("PUT", "/v1/rooms/{room}", "Update a room: the fields given replace the stored ones",
              (_ROOM_ANSWER, *_BODY, *_AUTH, _ROOM, _STORE), Auth.SERVICE, body=UpdateRoom, params=_ROOM_PARAM),
    Operation("PATCH", "/v1/rooms/{room}", "Update a room (as PUT)",
              (_ROOM_ANSWER, *_BODY, *_AUTH, _ROOM, _STORE), Auth.SERVICE, body=UpdateRoom, params=_ROOM_PARAM),
    Operation("DELETE", "/v1/rooms/{room}", "Delete a room",
              (Answer(200, "`Room deleted`", str, (TEXT,)), _BAD, *_AUTH, _ROOM, _STORE), Auth.SERVICE,
              params=_ROOM_PARAM),
    # -- the management API of live rooms
    Operation("GET", "/v1/rooms/{room}/participants", "The participants of a room (OWT)",
              (Answer(200, "The participants (none when the room is not live)", list[Participant]), _BAD, *_AUTH,
               _STORE, *_LIVE), Auth.SERVICE, params=_ROOM_PARAM, tag="management"),
    Operation("GET", "/v1/rooms/{room}/participants/{participant}", "A participant (OWT)",
              (Answer(200, "The participant", Participant), _BAD, *_AUTH, _STORE, *_LIVE), Auth.SERVICE,
              params=_PARTICIPANT, tag="management"),
    Operation("PATCH", "/v1/rooms/{room}/participants/{participant}",
              "Change a participant's permissions with OWT's JSON patch",
              (Answer(200, "The participant as changed", Participant), *_BODY, *_AUTH, _STORE, *_LIVE), Auth.SERVICE,
              body=JsonPatch, params=_PARTICIPANT, tag="management"),
    Operation("DELETE", "/v1/rooms/{room}/participants/{participant}", "Drop a participant (OWT)",
              (Answer(200, "`Participant deleted`", str, (TEXT,)), _BAD, *_AUTH, _STORE, *_LIVE), Auth.SERVICE,
              params=_PARTICIPANT, tag="management"),
    Operation("GET", "/v1/rooms/{room}/streams", "The published streams of a room (OWT)",
              (Answer(200, "The streams (none when the room is not live)", list[Stream]), _BAD, *_AUTH, _STORE,
               *_LIVE), Auth.SERVICE, params=_ROOM_PARAM, tag="management"),
    Operation("GET", "/v1/rooms/{room}/streams/{stream}", "A published stream (OWT)",
              (Answer(200, "The stream", Stream), _BAD, *_AUTH, _STORE, *_LIVE), Auth.SERVICE, params=_STREAM,
              tag="management"),
    Operation("DELETE", "/v1/rooms/{room}/streams/{stream}", "End a publication (OWT)",
              (Answer(200, "`Stream deleted`", str, (TEXT,)), _BAD, *_AUTH, _STORE, *_LIVE), Auth.SERVICE,
              params=_STREAM, tag="management"),
    Operation("POST", "/v1/rooms/{room}/messages", "A text from `server` to everyone or one participant",
              (Answer(200, "Whom it reached", TextSent), *_BODY, *_AUTH, _STORE, *_LIVE), Auth.SERVICE,
              body=ServerText, params=_ROOM_PARAM, tag="management"),
    # -- health, metrics, this document
    Operation("GET", "/healthz", "Liveness", (Answer(200, "The process serves", Health),), tag="operations"),
    Operation("GET", "/readyz", "Readiness: the cluster manager answers and a portal takes tokens",
              (Answer(200, "Ready", ReadinessAnswer), Answer(503, "Not ready (`reason` says why)", ReadinessAnswer)),
              tag="operations"),
    Operation("GET", "/metrics", "Prometheus metrics",
              (Answer(200, "Prometheus text exposition format 0.0.4", str, (TEXT,)),), tag="operations"),
    Operation("GET", OPENAPI_PATH, "This document", (Answer(200, "OpenAPI 3.1", dict[str, Any]),),
              tag="operations"),
    # -- the admin relay (switchboard.wiring mounts it)
    Operation("POST", "/admin/rpc", "Call an admin method of the cluster manager",
              (Answer(200, "The method's result", AdminAnswer),
               Answer(400, "Bad arguments (`bad_arguments`), or a body that is not valid HTTP framing",
                      (AdminErrorBody, ErrorBody)),
               Answer(401, "No admin key, or a wrong one", AdminErrorBody),
               Answer(404, "Not an admin method, or an unknown worker or task", AdminErrorBody),
               Answer(409, "The cluster manager refused (its code)", AdminErrorBody),
               _error(408, "The body did not arrive within `body_timeout`"),
               _error(413, "The body is larger than `client_max_size`"),
               Answer(415, "The body is not application/json", AdminErrorBody),
               Answer(500, "The cluster manager failed (`internal`)", AdminErrorBody),
               Answer(503, "The cluster manager cannot be reached", AdminErrorBody),
               Answer(504, "The cluster manager did not answer in time", AdminErrorBody)),
              Auth.ADMIN, body=AdminRequest, tag="admin"),
    # -- the status page
    Operation("GET", "/dashboard", "The status page",
              (Answer(200, "The page", str, _PAGE), Answer(401, "Not logged in: the login form", str, _PAGE)),
              Auth.SESSION, tag="dashboard"),
    Operation("POST", "/dashboard/login", "Open a session with an admin key",
              (Answer(303, "Logged in: the session cookie, and back to the page", headers=("Location", "Set-Cookie")),
               *(Answer(status, description, str, _PAGE) for status, description in (
                   (400, "No admin key"), (401, "Not an admin key of this cluster"), (403, "Another origin"),
                   (415, "Not a form"), (503, "The cluster manager cannot be reached"))),
               Answer(429, "Too many attempts from this address", str, _PAGE, ("Retry-After",)),
               _error(408, "The body did not arrive within `body_timeout`"),
               _error(413, "The body is larger than `client_max_size`")),
              body=LoginForm, body_media=FORM, tag="dashboard"),
    Operation("POST", "/dashboard/logout", "End the session",
              (Answer(200, "Logged out", LoggedOut), *_REFUSED), Auth.SESSION_CSRF, tag="dashboard"),
    Operation("GET", "/dashboard/state", "The board: workers, rooms and faults",
              (Answer(200, "The board", Board), Answer(401, "Not logged in", AdminErrorBody)), Auth.SESSION,
              tag="dashboard"),
    Operation("GET", "/dashboard/events", "The board as server-sent events (`event: board`, `event: logout`)",
              (Answer(200, "The stream", str, ("text/event-stream",)), Answer(401, "Not logged in", AdminErrorBody),
               Answer(503, "Too many live pages (`dashboard.streams`)", AdminErrorBody)), Auth.SESSION,
              tag="dashboard"),
    *(Operation("POST", f"/dashboard/{name}", f"{name.capitalize()} a worker (the admin method `{name}`)",
                (Answer(200, "The worker", AdminAnswer), Answer(400, "Bad body (`bad_arguments`)", AdminErrorBody),
                 *_REFUSED, *_MANAGER, _error(408, "The body did not arrive within `body_timeout`"),
                 _error(413, "The body is larger than `client_max_size`")),
                Auth.SESSION_CSRF, body=WorkerBody, tag="dashboard") for name in ("drain", "undrain")),
    Operation("GET", "/dashboard/static/{name}", "The page's script and style",
              (Answer(200, "The file", str, ("text/javascript", "text/css")),
               Answer(404, "No such file", AdminErrorBody)), params={"name": StaticName}, tag="dashboard"),
)

_SECURITY_SCHEMES = {
    "serviceKey": {"type": "apiKey", "in": "header", "name": SERVICE_KEY_HEADER,
                   "description": "A key of `token_api.service_keys`"},
    "mauth": {"type": "apiKey", "in": "header", "name": "Authorization",
              "description": "OWT's MAuth: `MAuth realm=…,mauth_signature_method=HMAC_SHA256,mauth_serviceid=…,"
                             "mauth_cnonce=…,mauth_timestamp=…,mauth_signature=…` (docs/token-api.md)"},
    "adminKey": {"type": "http", "scheme": "bearer", "description": "An admin key of `keys.admin_keys`"},
    "dashboardSession": {"type": "apiKey", "in": "cookie", "name": COOKIE,
                         "description": "Set by `POST /dashboard/login`"},
    "csrfToken": {"type": "apiKey", "in": "header", "name": CSRF_HEADER,
                  "description": "The session's CSRF token, in the page's HTML"},
}
_HEADERS = {
    "Retry-After": "Seconds to wait before asking again",
    "WWW-Authenticate": "`MAuth realm=\"switchboard\"`",
    "Location": "Where to go next",
    "Set-Cookie": "The session cookie",
}


def _security(auth: Auth, open_api: bool) -> list[dict[str, list[str]]]:
    if auth is Auth.SERVICE:
        return [{}] if open_api else [{"serviceKey": []}, {"mauth": []}]
    if auth is Auth.ADMIN:
        return [{"adminKey": []}]
    if auth is Auth.SESSION:
        return [{"dashboardSession": []}]
    if auth is Auth.SESSION_CSRF:
        return [{"dashboardSession": [], "csrfToken": []}]
    return []


def _types_of(operation: Operation) -> list[Any]:
    found: list[Any] = [*operation.params.values()]
    if operation.body is not None:
        found.append(operation.body)
    if operation.query is not None:
        found.append(operation.query)
    for answer in operation.answers:
        if isinstance(answer.body, tuple):
            found.extend(answer.body)
        elif answer.body is not None:
            found.append(answer.body)
    return found


def _http_patterns(schema: Any) -> Any:
    """``schema`` with its patterns as ECMA 262 regular expressions (what JSON Schema has) that match
    what HTTP can carry: Python's whole-string anchors ``\\A`` and ``\\Z`` become ``^`` and ``$`` (in
    ECMA ``$`` matches only at the very end), and the range of lone surrogates is left out (no UTF-8
    text holds one: the JSON decoder refuses them, and a path's undecodable bytes stay escaped)."""
    if isinstance(schema, dict):
        return {key: (_http_pattern(value) if key == "pattern" and isinstance(value, str) else _http_patterns(value))
                for key, value in schema.items()}
    if isinstance(schema, list):
        return [_http_patterns(item) for item in schema]
    return schema


def _http_pattern(pattern: str) -> str:
    return pattern.replace("\\A", "^").replace("\\Z", "$").replace("\\ud800-\\udfff", "")


class _Schemas:
    def __init__(self, operations: tuple[Operation, ...]) -> None:
        types: list[Any] = []
        for operation in operations:
            for kind in _types_of(operation):
                if kind not in types:
                    types.append(kind)
        schemas, self.components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
        self._of = dict(zip(map(_key, types), schemas, strict=True))

    def of(self, kind: Any) -> dict[str, Any]:
        if isinstance(kind, tuple):
            return {"anyOf": [self.of(each) for each in kind]}
        schema: dict[str, Any] = self._of[_key(kind)]
        return schema

    def query(self, struct: type[msgspec.Struct]) -> list[dict[str, Any]]:
        properties = self.components[struct.__name__]["properties"]
        return [{"name": name, "in": "query", "required": False, "schema": schema}
                for name, schema in properties.items()]


def _key(kind: Any) -> str:
    return repr(kind)


def _body_required(operation: Operation) -> bool:
    """An empty JSON body counts as ``{}`` (:func:`token_api.bodies.read_body`): optional when ``{}`` is a
    valid body."""
    if operation.body_media != JSON:
        return True
    try:
        msgspec.convert({}, operation.body)
    except msgspec.ValidationError:
        return True
    return False


def _operation(operation: Operation, schemas: _Schemas, open_api: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": operation.summary, "tags": [operation.tag],
                           "operationId": f"{operation.method.lower()} {operation.path}"}
    parameters = [{"name": name, "in": "path", "required": True, "schema": schemas.of(kind)}
                  for name, kind in operation.params.items()]
    if operation.query is not None:
        parameters += schemas.query(operation.query)
    if parameters:
        out["parameters"] = parameters
    if operation.body is not None:
        out["requestBody"] = {"required": _body_required(operation),
                              "content": {operation.body_media: {"schema": schemas.of(operation.body)}}}
    responses: dict[str, Any] = {}
    for answer in operation.answers:
        documented_answer: dict[str, Any] = {"description": answer.description}
        if answer.body is not None:
            documented_answer["content"] = {media: {"schema": schemas.of(answer.body)} for media in answer.media}
        if answer.headers:
            documented_answer["headers"] = {name: {"description": _HEADERS[name], "schema": {"type": "string"}}
                                            for name in answer.headers}
        responses[str(answer.status)] = documented_answer
    out["responses"] = responses
    security = _security(operation.auth, open_api)
    out["security"] = security
    return out


def documented(app: web.Application) -> tuple[Operation, ...]:
    """The operations of :data:`OPERATIONS` whose route ``app`` has."""
    served = _served(app)
    return tuple(op for op in OPERATIONS if (op.method, op.path) in served)


def _served(app: web.Application) -> set[tuple[str, str]]:
    served = set()
    for route in app.router.routes():
        if route.method == hdrs.METH_HEAD or route.resource is None:
            continue
        served.add((route.method, route.resource.canonical))
    return served


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s routes."""
    operations = documented(app)
    schemas = _Schemas(operations)
    open_api = not app[SETTINGS].require_service_key
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, schemas, open_api)
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard token API",
            "version": "1",
            "description": "Join tokens, rooms and the management API of live rooms (OWT-compatible paths and "
                           "bodies), the status page, the admin relay, health and metrics. Every failure but "
                           "those of the admin relay and the status page has the body "
                           "`{\"error\": {\"code\", \"message\", \"reason\"}}`. Every GET also answers HEAD.",
        },
        "paths": paths,
        "components": {"schemas": schemas.components, "securitySchemes": _SECURITY_SCHEMES},
    }
    patched: dict[str, Any] = _http_patterns(document)
    return patched


class _Cached:
    """The document's bytes, made at the first request (the routes are fixed by then)."""

    def __init__(self) -> None:
        self.body: bytes | None = None


_DOCUMENT = web.AppKey("openapi_document", _Cached)


async def serve_openapi(request: web.Request) -> web.Response:
    cached = request.app[_DOCUMENT]
    if cached.body is None:
        cached.body = msgspec.json.encode(openapi_document(request.app))
    return web.Response(body=cached.body, content_type=JSON)


def openapi_routes(app: web.Application) -> None:
    """Serve the document at :data:`OPENAPI_PATH` (no credentials: it holds no secret)."""
    app[_DOCUMENT] = _Cached()
    app.router.add_get(OPENAPI_PATH, serve_openapi)
