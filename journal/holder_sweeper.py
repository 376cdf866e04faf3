"""Signs of life of the holder journals, and deleting the holder streams of dead ones: :class:`HolderSweeper`.

Every :class:`~journal.holder.HolderJournal` instance writes to a holder stream of its own, new with the
instance, so each controller restart (or death) leaves one behind: 2 open files and ~65 kB on every broker
node, plus its bytes up to ``holder_max_bytes``.  The sweeper of each journal deletes those no one needs.

Where holder streams are listed: a journal names its holder stream (header ``h``) in each "opened" entry it
writes to the rooms directory (``<prefix>rooms``), once per room, before that room's first claim and so
before its first START (:class:`HolderDirectory`).  The directory therefore lists every holder stream that
was ever written, with every room whose claims log may name it.  A swept stream gets a ``holder_swept``
entry there, and is not looked at again.

Which instances live: before its first "opened" entry, and then every quarter of ``holder_dead_after``
while it runs, a journal notes "alive" (``h``) in ``<prefix>holders``.  A sweeper reads that stream from
``holder_dead_after`` ago (a timestamp offset: only the last part of it) and leaves alone every stream noted
there, and its own.

A holder stream H of a dead instance is deleted iff no room needs it: for every room H ever opened, the
room's claims log (:class:`~journal.holder_log.ClaimsLog`) has no window in H in its current history (since
its last forget) at or after the claim of the room's newest snapshot.  Those are exactly the windows a
replay from the newest snapshot reads, and the current claim's window is the last of them, so a room whose
last window is in H keeps it until a newer claim *and* a snapshot in the newer window.  A window from
before the last forget is read by no one: a claimer only fences its stream, and a FENCE to a deleted
stream is skipped (the read finds no stream: :func:`journal.stream_read.scan`), its window's records
never being replayed again.

A frozen instance that comes back after ``holder_dead_after`` and whose stream was swept meanwhile (only
possible once every room it held had moved on) never declares its stream again
(:class:`~journal.holder_tail.OwnTail`): it lets go of every room it held, and goes on in a new holder stream,
noted alive before it exists (:meth:`journal.holder.HolderJournal._renew`).

Bounded work: one round every ``holder_sweep_interval`` (the first one interval after the start), reading
the rooms directory on from where the last round ended (whole at the first), the last ``holder_dead_after``
of ``<prefix>holders``, and, for at most ``holder_sweep_batch`` dead streams (taken in turn across
rounds), the claims logs and newest snapshots of the rooms each one held (:data:`READ_AT_ONCE` at a time),
all on a connection of the sweeper's own, so a read the broker is slow to answer never costs the journal
its writes' connection.  A dead stream found needed is looked at again after a wait that doubles each
time, up to :data:`LATER_AT_MOST` (each look publishes a read marker into its rooms' streams).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiormq

from .base import JournalUnavailable
from .holder_entries import parts
from .holder_log import ClaimsLog
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import OPENED, Message
from .stream_layout import Layout
from .stream_read import Seer, read, scan
from .stream_rooms import Directory
from .stream_snapshots import Snapshots

__all__ = ["ALIVE", "SWEPT", "HolderDirectory", "HolderSweeper"]

ALIVE, SWEPT = "alive", "holder_swept"

#: Longest wait before a dead holder stream found needed is looked at again, seconds.  Each look reads the
#: claims logs and newest snapshots of its rooms, publishing a read marker into each: a snapshot stream
#: (``snapshot_max_bytes``, 2 MB) holds ~20,000 markers before its newest snapshot may be dropped, and a
#: dead stream may stay needed for as long as a quiet room lives on without a snapshot.
LATER_AT_MOST = 6 * 3600.0

#: Rooms whose claims log (and newest snapshot) one look reads at once (a read is a channel, a marker and a
#: consumer).  A dead stream of 200 rooms, all to be read: 6.6, 11.8, 10.9 s one at a time against 5.0,
#: 3.0, 7.2 s eight at a time (interleaved, on a shared 2-core machine at load 5-8: docs/holder-journal.md).
READ_AT_ONCE = 8

#: What a sweep round may fail with: it is logged, and the next round tries again.
_ERRORS: tuple[type[BaseException], ...] = (JournalUnavailable, *BROKER_ERRORS)


class HolderDirectory(Directory):
    """The rooms directory of a holder journal: "opened" entries name its holder stream, and the first one
    waits for the journal's first sign of life (so no sweeper takes its stream for a dead one's)."""

    def __init__(self, link: Connection, holder: str, announce: Callable[[], Awaitable[None]]) -> None:
        super().__init__(link, holder)
        self._announce = announce

    async def opened(self, room: str) -> None:
        if not self.listed(room):
            await self._announce()
        await super().opened(room)

    def renew(self, holder: str) -> None:
        """The journal writes to holder stream ``holder`` from now on: each room's next "opened" names it."""
        self._holder = holder
        self._listed.clear()


class HolderSweeper:
    """This journal's signs of life, and its rounds of sweeping other journals' dead holder streams."""

    def __init__(self, url: str, link: Connection, holder: str) -> None:
        self._link = link
        self._holder = holder
        settings = link.settings
        #: The sweep rounds' own connection (made at the first round): a read that gets no answer in time
        #: leaves its connection (:meth:`Connection.consume_started`), and it must not be the journal's,
        #: which carries its writes.
        self._reader = Connection(url, settings, f"{link.name}.sweeper", Layout(settings), on_lost=self._lost)
        self._snapshots = Snapshots(self._reader)
        self._directory = Directory(self._reader)
        #: The claims logs of the rooms looked at, read on from where they were.
        self._logs: dict[str, ClaimsLog] = {}
        self._dead_after = settings.holder_dead_after
        #: Seconds between two signs of life.
        self.alive_every = settings.holder_dead_after / 4
        self._alive_at: float | None = None
        self._keeping = False
        self._alive_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        #: The last holder stream a round looked at: the next round goes on after it.
        self._cursor: str | None = None
        #: Holder streams this journal deleted, and the rounds it made.
        self.swept: list[str] = []
        self._rounds = 0
        #: What the rooms directory said up to ``_directory_next``: the rooms each holder stream opened, and
        #: the holder streams swept.
        self._rooms: dict[str, dict[str, None]] = {}
        self._swept: set[str] = set()
        self._directory_next: int | str = "first"
        #: Dead holder streams found needed: when to look at each again (this loop's clock), and how long
        #: the last wait was (it doubles each time, from ``holder_sweep_interval`` to :data:`LATER_AT_MOST`).
        self._later: dict[str, tuple[float, float]] = {}

    # -- signs of life -------------------------------------------------------------------------------

    async def announce(self) -> None:
        """Note "alive" in ``<prefix>holders`` unless this journal did within ``alive_every``; from the first
        one on, note it every ``alive_every`` until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        async with self._alive_lock:
            if self._alive_at is not None and loop.time() - self._alive_at < self.alive_every:
                return
            await self._note_alive()
            first = not self._keeping
            self._alive_at = loop.time()
            self._keeping = True
        if first:
            self._tasks.append(loop.create_task(self._keep_alive(), name=f"journal:alive:{self._holder}"))

    def renew(self, holder: str) -> None:
        """The journal writes to holder stream ``holder`` from now on: its next sign of life (at once) names it."""
        self._holder = holder
        self._alive_at = None

    async def _note_alive(self) -> None:
        link = self._link
        queue = link.layout.holders_queue
        try:
            async with asyncio.timeout(link.settings.append_timeout):
                await link.ensure_declared(queue)
                await link.publish(queue, b"", {"k": ALIVE, "h": self._holder})
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: {queue} took longer than {link.settings.append_timeout} s") from exc
        except BROKER_ERRORS as exc:
            raise JournalUnavailable(f"journal: {queue} failed, RabbitMQ at {link.where}: {exc!r}") from exc

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.alive_every / 2)  # a late round is caught up within half an interval
            try:
                await self.announce()
            except _ERRORS as exc:
                self._link.log.warning("holder_alive_failed", holder=self._holder, error=repr(exc))

    # -- rounds --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Sweep every ``holder_sweep_interval`` (0: never)."""
        interval = self._link.settings.holder_sweep_interval
        if interval > 0 and not any(t.get_name().startswith("journal:sweep:") for t in self._tasks):
            self._tasks.append(asyncio.get_running_loop().create_task(self._run(interval),
                                                                      name=f"journal:sweep:{self._holder}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        self._keeping = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._rounds and not self._reader.closed:  # (never connected without a round)
            self._reader.shut()
            await self._reader.wait_closed()

    def _lost(self, exc: BaseException | None) -> None:
        self._reader.log.info("holder_sweeper_connection_lost", error=repr(exc))

    async def _run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)  # the first round an interval after the start, not with it
            try:
                await self.sweep()
            except _ERRORS as exc:
                self._link.log.warning("holder_sweep_failed", error=repr(exc))

    async def sweep(self) -> list[str]:
        """One round: delete up to ``holder_sweep_batch`` dead holder streams no room needs; those deleted."""
        self._rounds += 1
        holders = await self._listed()
        live = await self._live()
        if live is None:  # no journal ever noted a sign of life there (or the stream was deleted): none is dead
            return []
        now = asyncio.get_running_loop().time()
        dead = [h for h in holders if h != self._holder and h not in live and self._later.get(h, (0.0, 0.0))[0] <= now]
        if self._cursor in dead:  # go on after the last one looked at
            at = dead.index(self._cursor) + 1
            dead = dead[at:] + dead[:at]
        deleted: list[str] = []
        for holder in dead[:self._link.settings.holder_sweep_batch]:
            self._cursor = holder
            needed_by = await self._needed_by(holder, holders[holder])
            if needed_by is not None:
                _, wait = self._later.get(holder, (0.0, 0.0))
                wait = min(max(2 * wait, self._link.settings.holder_sweep_interval), LATER_AT_MOST)
                self._later[holder] = (now + wait, wait)
                self._link.log.debug("holder_stream_kept", holder=holder, room=needed_by, next_look=wait)
                continue
            self._later.pop(holder, None)
            await self._delete(holder)
            self._link.log.info("holder_stream_swept", holder=holder, rooms=len(holders[holder]))
            deleted.append(holder)
        self.swept.extend(deleted)
        return deleted

    async def _listed(self) -> dict[str, list[str]]:
        """The holder streams the rooms directory names and does not say were swept, each with the rooms
        it opened, in the order they first appear.  Each round reads on from where the last one ended."""
        seen: list[Message] = []

        def keep(message: Message) -> bool:
            seen.append(message)
            return False

        def begin() -> Seer:
            seen.clear()
            return keep

        at = await scan(self._reader, self._reader.layout.rooms_queue, self._directory_next, begin)
        if at:
            self._directory_next = at  # the marker's journal offset: the next stream offset
        for message in seen:
            holder, room = message.headers.get("h"), message.headers.get("room")
            if not isinstance(holder, str):
                continue
            if message.kind == OPENED and isinstance(room, str) and holder not in self._swept:
                self._rooms.setdefault(holder, {})[room] = None
            elif message.kind == SWEPT:
                self._swept.add(holder)
                self._rooms.pop(holder, None)
        return {holder: list(opened) for holder, opened in self._rooms.items()}

    async def _live(self) -> set[str] | None:
        """The holder streams whose journals noted "alive" within ``holder_dead_after`` (the broker's chunk
        times against this machine's clock: a skew of a few seconds only moves the bound that much);
        ``None`` if ``<prefix>holders`` does not exist."""
        since = datetime.now(UTC) - timedelta(seconds=self._dead_after)
        messages = await read(self._reader, self._reader.layout.holders_queue, since)
        if messages is None:
            return None
        live: set[str] = set()
        for message in messages:
            holder = message.headers.get("h")
            if message.kind == ALIVE and isinstance(holder, str):
                live.add(holder)
        return live

    async def _needed_by(self, holder: str, rooms: list[str]) -> str | None:
        """One of ``rooms`` whose replay from its newest snapshot reads a window in ``holder`` (``READ_AT_ONCE``
        rooms looked at a time, until one does)."""
        for at in range(0, len(rooms), READ_AT_ONCE):
            chunk = rooms[at:at + READ_AT_ONCE]
            for room, needs in zip(chunk, await asyncio.gather(*(self._needs(room, holder) for room in chunk))):
                if needs:
                    return room
        return None

    async def _needs(self, room: str, holder: str) -> bool:
        log = await self._claims_log(room)
        if log is None:
            return False
        windows = [claim.at for claim in log.claims if claim.holder == holder]
        if not windows:
            return False
        newest = await self._snapshots.newest(room)
        since = parts(newest.offset)[0] if newest is not None and newest.offset > 0 else 0
        return max(windows) >= since

    async def _claims_log(self, room: str) -> ClaimsLog | None:
        """``room``'s claims log read up to now (on from where this sweeper's last read of it ended); ``None``
        if the room has no stream."""
        start = self._logs.get(room) or ClaimsLog()
        trial: list[ClaimsLog] = []

        def begin() -> Seer:
            log = start.copy()
            trial[:] = [log]

            def see(message: Message) -> bool:
                log.see(message)
                return False

            return see

        at = await scan(self._reader, self._reader.layout.room_queue(room), start.next, begin)
        if at is None:
            return None
        log = trial[0]
        log.next = at
        self._logs[room] = log
        return log

    async def _delete(self, holder: str) -> None:
        link = self._reader
        try:
            async with asyncio.timeout(link.settings.append_timeout):
                try:
                    await link.delete(holder)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    pass  # deleted meanwhile (another journal's sweeper)
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: deleting {holder} took longer than "
                                     f"{link.settings.append_timeout} s") from exc
        link.undeclared(holder)
        await self._directory.note({"k": SWEPT, "h": holder})
        self._swept.add(holder)
        self._rooms.pop(holder, None)
