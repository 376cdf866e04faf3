"""The management API of live rooms: participants, streams and server texts (OWT's
``/v1/rooms/{room}/participants`` and ``/streams`` routes, same paths, bodies and JSON-patch form),
(``PATCH /v1/rooms/{room}``, a partial update like ``PUT``, is in :mod:`token_api.routes`).

Authenticated like ``/v1/rooms`` (a service key or MAuth).  A live room is held by whichever
controller the cluster manager says (``get_scheduled``); the route calls that controller's admin
RPC with the token API's own admin key (``keys.admin_keys``), and asks again when the room moved
meanwhile (``ManagementSettings.attempts``).  A room that exists but is not live has no
participants and no streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from aiohttp import web

from contracts.cluster import ClusterClient
from contracts.controller import ControllerClient, PatchOp
from rpc import RpcError, RpcRemoteError, RpcTimeout, RpcUnavailable, Transport

from .app_keys import AUTHENTICATOR, STORE
from .bodies import read_body
from .errors import BadRequest, GatewayTimeout, ManagementUnavailable, NotFound, RoomNotFound
from .rooms import Media
from .routes import json_answer, room_id_of
from .settings import ManagementSettings

__all__ = ["management_routes", "ManagementRelay", "PatchOperation", "ServerText", "Participant", "Permission",
           "Stream", "TextSent", "PartId", "JsonPatch"]

T = TypeVar("T")
#: One admin call of a room's controller, given its client, the admin key and the call's timeout.
AdminCall = Callable[[ControllerClient, str, float], Awaitable[T]]

#: Controller answers that mean the room is between controllers: ask the cluster manager again.
_MOVING = frozenset({"unknown_room", "room_reloading", "room_closed", "not_found"})
_NOT_FOUND = {"unknown_participant": "Participant not found", "unknown_stream": "Stream not found",
              "unknown_target": "Participant not found"}
_BAD_PATCH = frozenset({"invalid_json_op", "invalid_json_path", "invalid_json_value", "bad_arguments"})

#: A participant or stream id in a path: 1–128 ASCII letters, digits and ``-``.
PartId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"\A[A-Za-z0-9-]+\Z")]


class Permission(msgspec.Struct, forbid_unknown_fields=True):
    publish: Media
    subscribe: Media


class Participant(msgspec.Struct, kw_only=True):
    """What an application sees of a participant (the controller's admin view without its internals)."""

    id: str
    user: str
    role: str
    permission: Permission
    state: Literal["connected", "held"]


class Stream(msgspec.Struct, kw_only=True):
    """A published stream as participants see it (OWT's StreamInfo)."""

    id: str
    type: str
    media: dict[str, Any]
    info: dict[str, Any]


class TextSent(msgspec.Struct, kw_only=True):
    """Answer of ``POST /v1/rooms/{room}/messages``: to whom, and how many participants got it."""

    to: str
    delivered_to: int


class PatchOperation(msgspec.Struct, forbid_unknown_fields=True):
    """One JSON-patch operation on a participant (``op: "replace"``, ``path:
    "/permission/{publish|subscribe}[/{audio|video}]"``, as OWT's management API)."""

    op: str
    path: str
    value: Any = None


_MEDIA = {"type": "object", "properties": {"audio": {"type": "boolean"}, "video": {"type": "boolean"}},
          "additionalProperties": False}
#: What the room's controller takes (``conference_controller.permissions``; it answers 400
#: ``invalid_json_op``, ``invalid_json_path`` or ``invalid_json_value`` for anything else).
_PATCH_SCHEMA = {"properties": {"op": {"const": "replace"}}, "oneOf": [
    {"properties": {"path": {"type": "string", "pattern": "^/*permission/(publish|subscribe)/(audio|video)/*$"},
                    "value": {"type": "boolean"}}, "required": ["path", "value"]},
    {"properties": {"path": {"type": "string", "pattern": "^/*permission/(publish|subscribe)/*$"}, "value": _MEDIA},
     "required": ["path", "value"]},
]}

#: Body of ``PATCH /v1/rooms/{room}/participants/{participant}``: OWT's JSON patch.
JsonPatch = list[Annotated[PatchOperation, msgspec.Meta(extra_json_schema=_PATCH_SCHEMA)]]


class ServerText(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /v1/rooms/{room}/messages``: a text from ``"server"`` to ``"all"`` or one
    participant id."""

    message: Annotated[str, msgspec.Meta(max_length=16384)]
    to: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = "all"


class ManagementRelay:
    """Calls the admin RPC of the controller holding a room."""

    def __init__(self, transport: Transport, cluster_name: str, admin_key: str, settings: ManagementSettings) -> None:
        self.transport = transport
        self.cluster_name = cluster_name
        self.admin_key = admin_key
        self.settings = settings

    async def call(self, room: str, ask: AdminCall[T]) -> T | None:
        """``ask`` the room's controller (with the token API's admin key and the call timeout);
        ``None`` when the room is not live.  Raises the HTTP error that fits the controller's answer."""
        if not self.admin_key:
            raise ManagementUnavailable("the management API needs keys.admin_keys on the token API",
                                        retry_after=self.settings.retry_after, reason="no_admin_key")
        attempts = self.settings.attempts
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            controller = await self._controller_of(room)
            if controller is None:
                return None
            try:
                return await ask(ControllerClient(self.transport, controller), self.admin_key,
                                 self.settings.call_timeout)
            except RpcRemoteError as exc:
                if exc.code in _MOVING and not last:
                    await asyncio.sleep(self.settings.retry_interval)
                    continue
                raise _http_error(exc, self.settings.retry_after) from None
            except RpcUnavailable as exc:  # the controller died: the room is on its way elsewhere
                if not last:
                    await asyncio.sleep(self.settings.retry_interval)
                    continue
                raise _http_error(exc, self.settings.retry_after) from None
            except RpcError as exc:
                raise _http_error(exc, self.settings.retry_after) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _controller_of(self, room: str) -> str | None:
        try:
            scheduled = await ClusterClient(self.transport, self.cluster_name).get_scheduled(
                purpose="conference", task=room, timeout=self.settings.call_timeout)
        except RpcError as exc:
            raise _http_error(exc, self.settings.retry_after) from None
        return None if scheduled is None else scheduled.id


def _http_error(exc: RpcError, retry_after: int) -> web.HTTPError:
    if exc.code in _NOT_FOUND:
        return NotFound(_NOT_FOUND[exc.code], reason=exc.code)
    if exc.code in _BAD_PATCH:
        return BadRequest(exc.message, reason=exc.code)
    if isinstance(exc, RpcTimeout):
        return GatewayTimeout("the room's controller did not answer in time", reason="timeout")
    if exc.code == "unauthorized":
        return ManagementUnavailable("the room's controller refused the token API's admin key (keys.admin_keys)",
                                     retry_after=retry_after, reason="admin_key_refused")
    return ManagementUnavailable(f"the room cannot be reached now: {exc.message}", retry_after=retry_after,
                                 reason=exc.code if exc.code in _MOVING else "unavailable")


def _public(participant: dict[str, Any]) -> Participant:
    # A controller answer of another shape is a bug: the ValidationError becomes a 500.
    return msgspec.convert(participant, Participant)


def _part_id(request: web.Request, name: str) -> str:
    try:
        return msgspec.convert(request.match_info[name], PartId)
    except msgspec.ValidationError:
        raise BadRequest(f"Invalid {name} id", reason=f"invalid_{name}_id") from None


def _stream_id(request: web.Request) -> str:
    return _part_id(request, "stream")


def _participant_id(request: web.Request) -> str:
    return _part_id(request, "participant")


def management_routes(relay: ManagementRelay) -> list[web.RouteDef]:
    """The routes, to mount on the token API (``extra_routes``)."""

    async def live_room(request: web.Request) -> str:
        request.app[AUTHENTICATOR].authenticate(request)
        room = room_id_of(request)
        if await request.app[STORE].get_fresh(room) is None:
            raise RoomNotFound(room)
        return room

    async def participants(request: web.Request) -> web.Response:
        room = await live_room(request)
        found = await relay.call(room, lambda c, key, timeout: c.get_participants(room=room, admin_key=key,
                                                                                   timeout=timeout)) or []
        return json_answer([_public(p) for p in found])

    async def participant(request: web.Request) -> web.Response:
        room = await live_room(request)
        wanted = _participant_id(request)
        listed = await relay.call(room, lambda c, key, timeout: c.get_participants(room=room, admin_key=key,
                                                                                    timeout=timeout))
        for found in listed or []:
            if found.get("id") == wanted:
                return json_answer(_public(found))
        raise NotFound("Participant not found", reason="unknown_participant")

    async def patch_participant(request: web.Request) -> web.Response:
        room = await live_room(request)
        wanted = _participant_id(request)
        patch = await read_body(request, JsonPatch)
        ops = msgspec.convert(msgspec.to_builtins(patch), list[PatchOp])
        updated = await relay.call(room, lambda c, key, timeout: c.control_participant(
            room=room, participant=wanted, patch=ops, admin_key=key, timeout=timeout))
        if updated is None:
            raise NotFound("Participant not found", reason="unknown_participant")
        return json_answer(_public(updated))

    async def delete_participant(request: web.Request) -> web.Response:
        room = await live_room(request)
        wanted = _participant_id(request)
        dropped = await relay.call(room, lambda c, key, timeout: c.drop_participant(
            room=room, participant=wanted, admin_key=key, timeout=timeout))
        if dropped is None:
            raise NotFound("Participant not found", reason="unknown_participant")
        return web.Response(text="Participant deleted", content_type="text/plain")

    async def streams(request: web.Request) -> web.Response:
        room = await live_room(request)
        found = await relay.call(room, lambda c, key, timeout: c.get_streams(room=room, admin_key=key,
                                                                              timeout=timeout))
        return json_answer(msgspec.convert(found or [], list[Stream]))

    async def stream(request: web.Request) -> web.Response:
        room = await live_room(request)
        wanted = _stream_id(request)
        listed = await relay.call(room, lambda c, key, timeout: c.get_streams(room=room, admin_key=key,
                                                                               timeout=timeout))
        for found in listed or []:
            if found.get("id") == wanted:
                return json_answer(msgspec.convert(found, Stream))
        raise NotFound("Stream not found", reason="unknown_stream")

    async def delete_stream(request: web.Request) -> web.Response:
        room = await live_room(request)
        wanted = _stream_id(request)
        removed = await relay.call(room, lambda c, key, timeout: c.remove_stream(
            room=room, stream=wanted, admin_key=key, timeout=timeout))
        if removed is None:
            raise NotFound("Stream not found", reason="unknown_stream")
        return web.Response(text="Stream deleted", content_type="text/plain")

    async def post_message(request: web.Request) -> web.Response:
        room = await live_room(request)
        body = await read_body(request, ServerText)
        sent = await relay.call(room, lambda c, key, timeout: c.send_text(
            room=room, to=body.to, message=body.message, admin_key=key, timeout=timeout))
        if sent is None:  # nobody is in the room
            if body.to != "all":
                raise NotFound("Participant not found", reason="unknown_participant")
            return json_answer(TextSent(to="all", delivered_to=0))
        return json_answer(TextSent(to=sent.to, delivered_to=sent.delivered_to))

    base = "/v1/rooms/{room}"
    return [
        web.get(f"{base}/participants", participants),
        web.get(f"{base}/participants/{{participant}}", participant),
        web.patch(f"{base}/participants/{{participant}}", patch_participant),
        web.delete(f"{base}/participants/{{participant}}", delete_participant),
        web.get(f"{base}/streams", streams),
        web.get(f"{base}/streams/{{stream}}", stream),
        web.delete(f"{base}/streams/{{stream}}", delete_stream),
        web.post(f"{base}/messages", post_message),
    ]
