"""What the status page shows, read from the cluster with the operator's admin key.

One :class:`BoardReader` per page (its JSON read or its event stream) asks the cluster manager for
``overview`` and the faults after the last it saw (``faults``), and each live controller for its
rooms' participant counts (``get_rooms``), then composes a :class:`Board`.  The cluster manager is
called through :class:`contracts.admin.AdminClient`, so both sides share one schema.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import msgspec

from contracts.admin import AdminClient, Fault, FaultPage, Overview
from contracts.controller import ControllerClient
from rpc import RpcError, Transport

__all__ = ["Board", "BoardReader", "RoomRow", "BoardError"]

class RoomRow(msgspec.Struct, kw_only=True):
    room: str
    worker: str
    state: str
    #: ``None`` when its controller did not answer in time.
    participants: int | None = None
    name: str | None = None


class BoardError(msgspec.Struct, kw_only=True):
    code: str
    message: str


class Board(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One state of the page.  ``error``: the cluster manager could not be read (the rest is empty)."""

    overview: Overview | None = None
    rooms: list[RoomRow] = []
    #: The newest faults, oldest first.
    faults: list[Fault] = []
    error: BoardError | None = None


class _RoomSummary(msgspec.Struct):
    id: str
    participants: int
    name: str | None = None


class BoardReader:
    """Reads boards for one admin key, remembering the faults seen (at most ``faults_kept``).

    :param call_timeout: seconds each call may take.
    """

    def __init__(self, transport: Transport, cluster_name: str, admin_key: str, *, call_timeout: float,
                 faults_kept: int) -> None:
        self._transport = transport
        self._key = admin_key
        self._timeout = call_timeout
        self._admin = AdminClient(transport, cluster_name, admin_key=admin_key, timeout=call_timeout)
        self._faults: deque[Fault] = deque(maxlen=faults_kept)
        self._since = 0
        self._log = ""

    async def read(self) -> Board:
        try:
            overview = await self._admin.overview()
            await self._read_faults()
        except RpcError as exc:
            return Board(error=BoardError(code=exc.code, message=exc.message))
        except msgspec.ValidationError as exc:
            return Board(error=BoardError(code="bad_answer", message=f"unexpected answer: {exc}"))
        return Board(overview=overview, rooms=await self._rooms(overview), faults=list(self._faults))

    async def _read_faults(self) -> None:
        page = await self._fault_page(self._since)
        if page.log != self._log:
            # A new log (the first read, or another manager's after a failover): it numbers from 1
            # again, so read it from its start.
            self._faults.clear()
            self._log = page.log
            if self._since:
                page = await self._fault_page(0)
        self._faults.extend(page.faults)
        self._since = page.next

    async def _fault_page(self, since: int) -> FaultPage:
        return await self._admin.faults(since=since)

    async def _rooms(self, overview: Overview) -> list[RoomRow]:
        # The workers holding rooms (the manager's failover purposes: conference controllers).
        controllers = sorted({placement.worker for placement in overview.rooms})
        answers = await asyncio.gather(*(ControllerClient(self._transport, c).get_rooms(admin_key=self._key,
                                                                                          timeout=self._timeout)
                                         for c in controllers), return_exceptions=True)
        summaries: dict[tuple[str, str], _RoomSummary] = {}
        for controller, answer in zip(controllers, answers):
            if isinstance(answer, BaseException):
                if not isinstance(answer, (RpcError, msgspec.ValidationError)):
                    raise answer
                continue
            try:
                for summary in msgspec.convert(answer, list[_RoomSummary]):
                    summaries[(controller, summary.id)] = summary
            except msgspec.ValidationError:
                continue
        rows = []
        for placement in overview.rooms:
            found = summaries.get((placement.worker, placement.room))
            rows.append(RoomRow(room=placement.room, worker=placement.worker, state=placement.state,
                                participants=None if found is None else found.participants,
                                name=None if found is None else found.name))
        return rows

