"""The HTTP routes: tokens, rooms, health and metrics."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from credentials import new_id, readable_validation

from edge import client_address

from .app_keys import (
    AUTHENTICATOR,
    CLUSTER_NAME,
    METRICS,
    MINT_LIMITER,
    MINTER,
    SETTINGS,
    STORE,
    TRANSPORT,
    TRUSTED_PROXIES,
)
from .bodies import read_body
from .errors import BadRequest, Conflict, RoomNotFound, TooManyRequests
from .health import check_readiness
from .metrics import CONTENT_TYPE_LATEST
from .rooms import CreateRoom, RoomRecord, RoomId, UpdateRoom, room_from_create, room_json, room_with_update
from .store import RoomExists
from .tokens import TokenBody, TokenRequest

__all__ = ["routes", "room_id_of", "RoomsPage", "Health", "json_answer"]

routes = web.RouteTableDef()

_MAX_PER_PAGE = 1000
_DEFAULT_PER_PAGE = 100
_MAX_PAGE = 1_000_000
_encode = msgspec.json.Encoder().encode


class RoomsPage(msgspec.Struct, forbid_unknown_fields=False):
    """The query of ``GET /v1/rooms``: which page of rooms, in creation order."""

    page: Annotated[int, msgspec.Meta(ge=1, le=_MAX_PAGE)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=_MAX_PER_PAGE)] = _DEFAULT_PER_PAGE


class Health(msgspec.Struct):
    """Body of ``GET /healthz``."""

    status: str = "ok"


def json_answer(body: object, *, status: int = 200) -> web.Response:
    """``body`` (a Struct, or builtins) as JSON."""
    return web.Response(body=_encode(body), status=status, content_type="application/json")


def room_id_of(request: web.Request) -> str:
    """The ``{room}`` of the path, checked (400 ``invalid_room_id``)."""
    try:
        return msgspec.convert(request.match_info["room"], RoomId)
    except msgspec.ValidationError:
        raise BadRequest("Invalid room id", reason="invalid_room_id") from None


def _token_response(token: str) -> web.Response:
    return web.Response(text=token, content_type="text/plain", headers={"Cache-Control": "no-store"})


# -- tokens ---------------------------------------------------------------------------------------


def _admit_mint(request: web.Request) -> None:
    """429 when the client's address asked for more tokens than ``mints_per_address_*`` allow."""
    wait = request.app[MINT_LIMITER].take(client_address(request, request.app[TRUSTED_PROXIES]))
    if wait:
        raise TooManyRequests("too many tokens asked for from this address; retry later", retry_after=wait,
                              reason="too_many_mints")


@routes.post("/token")
async def post_token(request: web.Request) -> web.Response:
    principal = request.app[AUTHENTICATOR].authenticate(request)
    _admit_mint(request)
    body = await read_body(request, TokenRequest)
    minted = await request.app[MINTER].mint(
        body.room, principal.user or body.user, principal.role or body.role, body.preference,
        may_create_room=principal.service is not None,
    )
    request.app[METRICS].tokens_minted.labels(endpoint="token").inc()
    return _token_response(minted.token)


@routes.post("/v1/rooms/{room}/tokens")
async def post_room_token(request: web.Request) -> web.Response:
    principal = request.app[AUTHENTICATOR].authenticate(request)
    room = room_id_of(request)
    _admit_mint(request)
    body = await read_body(request, TokenBody)
    minted = await request.app[MINTER].mint(
        room, principal.user or body.user, principal.role or body.role, body.preference,
        may_create_room=principal.service is not None,
    )
    request.app[METRICS].tokens_minted.labels(endpoint="rooms").inc()
    return _token_response(minted.token)


# -- rooms ----------------------------------------------------------------------------------------


def _rooms_page(request: web.Request) -> RoomsPage:
    """The query as :class:`RoomsPage`: each number in decimal digits, within its bounds (400 otherwise)."""
    given = {name: request.query[name] for name in RoomsPage.__struct_fields__ if name in request.query}
    if not all(raw.isascii() and raw.isdigit() and len(raw) <= 9 for raw in given.values()):
        raise BadRequest("page and per_page must be positive integers", reason="invalid_query")
    try:
        return msgspec.convert({name: int(raw) for name, raw in given.items()}, RoomsPage)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid query: {readable_validation(str(exc))}", reason="invalid_query") from None


@routes.get("/v1/rooms")
async def list_rooms(request: web.Request) -> web.Response:
    request.app[AUTHENTICATOR].authenticate(request)
    query = _rooms_page(request)
    rooms = await request.app[STORE].page((query.page - 1) * query.per_page, query.per_page)
    return web.json_response([room_json(r) for r in rooms])


@routes.post("/v1/rooms")
async def create_room(request: web.Request) -> web.Response:
    request.app[AUTHENTICATOR].authenticate(request)
    body = await read_body(request, CreateRoom)
    room_id = body.id if isinstance(body.id, str) else new_id()
    try:
        room = room_from_create(body, room_id)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid room: {readable_validation(str(exc))}", reason="invalid_room") from None
    try:
        await request.app[STORE].create(room)
    except RoomExists:
        raise Conflict(f"Room {room_id!r} already exists", reason="room_exists") from None
    return web.json_response(room_json(room))


@routes.get("/v1/rooms/{room}")
async def get_room(request: web.Request) -> web.Response:
    request.app[AUTHENTICATOR].authenticate(request)
    room_id = room_id_of(request)
    room = await request.app[STORE].get_fresh(room_id)
    if room is None:
        raise RoomNotFound(room_id)
    return web.json_response(room_json(room))


@routes.put("/v1/rooms/{room}")
@routes.patch("/v1/rooms/{room}")
async def update_room(request: web.Request) -> web.Response:
    request.app[AUTHENTICATOR].authenticate(request)
    room_id = room_id_of(request)
    body = await read_body(request, UpdateRoom)

    def change(room: RoomRecord) -> RoomRecord:
        return room_with_update(room, body)

    try:
        room = await request.app[STORE].update(room_id, change)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid room: {readable_validation(str(exc))}", reason="invalid_room") from None
    if room is None:
        raise RoomNotFound(room_id)
    return web.json_response(room_json(room))


@routes.delete("/v1/rooms/{room}")
async def delete_room(request: web.Request) -> web.Response:
    request.app[AUTHENTICATOR].authenticate(request)
    room_id = room_id_of(request)
    if not await request.app[STORE].delete(room_id):
        raise RoomNotFound(room_id)
    return web.Response(text="Room deleted", content_type="text/plain")


# -- health and metrics ---------------------------------------------------------------------------


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_answer(Health())


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    readiness = await check_readiness(app[TRANSPORT], app[CLUSTER_NAME], app[SETTINGS].readiness_timeout)
    return json_answer(readiness.answer(), status=200 if readiness.ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[METRICS].render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
