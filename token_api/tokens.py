"""Minting join tokens: validate the request, find the room, reserve a portal, sign.

The token is :class:`credentials.JoinToken` encoded with :func:`credentials.encode_token`:
standard base64 of JSON whose ``host`` (``hostname:port``) and ``secure`` (a boolean) are all the
OWT SDK reads.  Its ``code`` is the portal task reserved for exactly ``token_lifetime`` seconds.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from credentials import JoinToken, Keyring, UnsafeText, check_safe, encode_token, new_id, now_ms, safe_pattern

from .errors import BadRequest, RoomNotFound
from .logs import log
from .placement import PortalScheduler
from .rooms import RoomRecord, RoomId, default_room
from .settings import TokenApiSettings
from .store_cache import CachedRoomStore

__all__ = ["Preference", "TokenBody", "TokenRequest", "TokenMinter", "MintedToken"]


_Text = Annotated[str, msgspec.Meta(max_length=128, pattern=safe_pattern(allow_empty=True))]


class Preference(msgspec.Struct, forbid_unknown_fields=True):
    """Where the client is: a portal must serve ``isp`` (hard filter); ``region`` is preferred."""

    isp: _Text | None = None
    region: _Text | None = None


class TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /v1/rooms/{room}/tokens`` (OWT)."""

    user: Annotated[str, msgspec.Meta(examples=["alice"])] = ""
    role: Annotated[str, msgspec.Meta(examples=["presenter"])] = ""
    preference: Preference | None = None


class TokenRequest(TokenBody, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /token``."""

    room: RoomId


class MintedToken(msgspec.Struct):
    token: str
    token_id: str
    code: str
    portal: str


class TokenMinter:
    def __init__(
        self, settings: TokenApiSettings, keyring: Keyring, store: CachedRoomStore, portals: PortalScheduler
    ) -> None:
        self._settings = settings
        self._keyring = keyring
        self._store = store
        self._portals = portals

    async def _room(self, room_id: str, may_create: bool) -> tuple[RoomRecord, bool]:
        """The room, and whether it still has to be stored (auto-created once the token is sure)."""
        room = await self._store.get(room_id)
        if room is not None:
            return room, False
        if not (self._settings.auto_create_rooms and may_create):
            raise RoomNotFound(room_id)
        return default_room(room_id), True

    def _check_user(self, user: str) -> None:
        if not user.strip():
            raise BadRequest("Name or role not valid: user must not be empty", reason="invalid_user")
        if len(user) > self._settings.max_user_length:
            raise BadRequest(
                f"Name or role not valid: user is longer than {self._settings.max_user_length} characters",
                reason="invalid_user",
            )
        try:
            check_safe(user, "user")
        except UnsafeText as exc:
            raise BadRequest(f"Name or role not valid: {exc}", reason="invalid_user") from None

    def _check_role(self, role: str) -> None:
        if not role:
            raise BadRequest("Name or role not valid: role must not be empty", reason="invalid_role")
        try:
            check_safe(role, "role")
        except UnsafeText as exc:
            raise BadRequest(f"Name or role not valid: {exc}", reason="invalid_role") from None

    async def mint(
        self, room_id: str, user: str, role: str, preference: Preference | None, *, may_create_room: bool
    ) -> MintedToken:
        """A signed token for ``user`` as ``role`` in ``room_id``; raises an :class:`ApiError`.

        ``may_create_room``: the caller is authenticated, so an unknown room may be created
        (``auto_create_rooms``); an anonymous caller gets tokens for existing rooms only."""
        self._check_user(user)
        self._check_role(role)
        room, is_new = await self._room(room_id, may_create_room)
        if not room.has_role(role):
            raise BadRequest(
                f"Name or role not valid: room {room_id!r} has no role {role[:64]!r}", reason="invalid_role"
            )
        origin: dict[str, Any] = msgspec.to_builtins(preference) if preference is not None else {}
        origin = {k: v for k, v in origin.items() if v is not None}
        lifetime = self._settings.token_lifetime
        code = new_id()
        not_after = now_ms() + int(lifetime * 1000)
        placement = await self._portals.reserve(code, origin or None, lifetime)
        if is_new:
            room, created = await self._store.get_or_create(room)
            if created:
                log.info("room_created", room=room.id, by="token")
            if not room.has_role(role):  # created concurrently with other roles
                await self._portals.release(placement.worker_id, code)
                raise BadRequest(f"Name or role not valid: room {room_id!r} has no role {role[:64]!r}",
                                 reason="invalid_role")
        token = JoinToken(
            token_id=new_id(),
            host=placement.host,
            secure=placement.secure,
            room=room.id,
            user=user,
            role=role,
            code=code,
            not_after=not_after,
            origin=origin,
        )
        log.info("token_minted", token_id=token.token_id, room=room.id, role=role, portal=placement.worker_id)
        return MintedToken(
            token=encode_token(token, self._keyring), token_id=token.token_id, code=code, portal=placement.worker_id
        )
