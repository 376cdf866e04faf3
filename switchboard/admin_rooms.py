"""``switchboard admin rooms|participants|kick``: rooms and participants through the token API's
management API (``GET /v1/rooms``, ``GET /v1/rooms/{room}/participants``,
``DELETE /v1/rooms/{room}/participants/{id}``; docs/token-api.md).

These go over HTTP to the token API (``--url``), not over the cluster admin RPC: the management API
already finds whichever controller holds the room, in embedded and cluster mode alike.  They
authenticate with a service key (``X-Service-Key``): ``--service-key``, else
``$SWITCHBOARD_SERVICE_KEY``, else the service key in the embedded server's state file (the one
``switchboard up`` prints in its ``curl`` line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp

__all__ = ["ROOM_COMMANDS", "add_room_commands", "room_command", "RoomCommandError", "show_room_result"]

#: The room commands and what each prints.
ROOM_COMMANDS = frozenset({"rooms", "participants", "kick"})

_PAGE_SIZE = 1000  # the largest ``per_page`` the token API accepts


class RoomCommandError(Exception):
    """The command failed; ``unreachable`` when the token API could not be reached at all."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def add_room_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the room commands to ``switchboard admin``'s subparsers."""
    keyed = argparse.ArgumentParser(add_help=False)
    keyed.add_argument("--service-key", default=argparse.SUPPRESS,
                       help="token API service key (default $SWITCHBOARD_SERVICE_KEY, else the embedded "
                            "server's state file)")
    sub.add_parser("rooms", parents=[common, keyed], help="list rooms (token API: GET /v1/rooms)")
    participants = sub.add_parser("participants", parents=[common, keyed],
                                  help="list who is in a room (token API: GET /v1/rooms/ROOM/participants)")
    participants.add_argument("room", metavar="ROOM")
    kick = sub.add_parser("kick", parents=[common, keyed],
                          help="remove a participant from a room (token API: DELETE …/participants/ID)")
    kick.add_argument("room", metavar="ROOM")
    kick.add_argument("participant", metavar="PARTICIPANT")


def _service_key(options: argparse.Namespace) -> str:
    from .admin import configured_key
    from .localkeys import LocalKeysError

    try:
        return configured_key(options, option="service_key", env="SWITCHBOARD_SERVICE_KEY", field="service_key")
    except LocalKeysError as exc:
        raise RoomCommandError(
            f"no service key: give --service-key or $SWITCHBOARD_SERVICE_KEY (the state file: {exc})",
            unreachable=True,
        ) from None


async def _request(session: aiohttp.ClientSession, method: str, url: str, key: str) -> Any:
    try:
        async with session.request(method, url, headers={"X-Service-Key": key}) as response:
            text = await response.text()
            status = response.status
            is_json = response.content_type == "application/json"
    except asyncio.TimeoutError:
        raise RoomCommandError(f"no answer in time from {url}", unreachable=True) from None
    except aiohttp.ClientError as exc:
        raise RoomCommandError(f"cannot reach the token API at {url}: {exc or type(exc).__name__}",
                               unreachable=True) from None
    if status >= 400:
        raise RoomCommandError(f"HTTP {status}: {_error_text(text)}", unreachable=False)
    if is_json:
        return json.loads(text)
    return text


def _error_text(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("reason") or error)
        return str(error)
    return str(body)


async def room_command(options: argparse.Namespace, url: str, timeout: float) -> Any:
    """Run one room command against the token API at ``url``; its result (JSON-ready).

    :raises RoomCommandError: when it failed.
    """
    key = _service_key(options)
    base = url.rstrip("/") + "/v1/rooms"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        if options.command == "rooms":
            rooms: list[Any] = []
            page = 1
            while True:
                batch = await _request(session, "GET", f"{base}?page={page}&per_page={_PAGE_SIZE}", key)
                rooms += batch
                if len(batch) < _PAGE_SIZE:
                    return rooms
                page += 1
        room = quote(options.room, safe="")
        if options.command == "participants":
            return await _request(session, "GET", f"{base}/{room}/participants", key)
        participant = quote(options.participant, safe="")
        await _request(session, "DELETE", f"{base}/{room}/participants/{participant}", key)
        return {"room": options.room, "participant": options.participant, "removed": True}


def show_room_result(command: str, result: Any) -> str:
    """``result`` of ``command`` as a readable table or line."""
    from .admin import _table

    if command == "rooms":
        if not result:
            return "no rooms"
        return _table(["ROOM", "NAME", "PARTICIPANT_LIMIT"],
                      [[r.get("id") or r.get("_id"), r.get("name"), r.get("participantLimit")] for r in result])
    if command == "participants":
        if not result:
            return "nobody in the room"
        rows = []
        for p in result:
            permission = p.get("permission") or {}
            publish = permission.get("publish") or {}
            can_publish = ",".join(k for k in ("audio", "video") if publish.get(k)) or "-"
            rows.append([p.get("id"), p.get("user"), p.get("role"), p.get("state"), can_publish])
        return _table(["PARTICIPANT", "USER", "ROLE", "STATE", "PUBLISH"], rows)
    return f"participant {result['participant']} removed from room {result['room']}"
