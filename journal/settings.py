"""Settings of the embedded server's journal (section ``[journal]``, not yet wired into the config)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["JournalSettings", "Durability"]

#: ``full``: an append returns once its record is fsync'd (SQLite ``synchronous=FULL``), so it
#: survives a power cut.  ``normal``: once it is written to the OS (WAL ``synchronous=NORMAL``): it
#: survives the process dying, a power cut may lose the last commits but leaves the file sound.
#: ``off``: like ``normal``, but a power cut may corrupt the file; for tests and benchmarks only.
Durability = Literal["full", "normal", "off"]

_AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]


class JournalSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: SQLite database file on local disk (its ``-wal`` and ``-shm`` files sit beside it).
    path: Annotated[str, msgspec.Meta(min_length=1)] = "switchboard-journal.sqlite3"
    #: When an append may return; see :data:`Durability`.
    durability: Durability = "full"
    #: Appends (and other writes) accepted but not yet committed; beyond this, ``append`` waits.
    max_pending: _AtLeastOne = 10000
    #: Most writes one transaction carries (group commit takes whatever queued up meanwhile).
    max_batch: _AtLeastOne = 1000
    #: Seconds SQLite waits for a lock held by another connection before the operation fails.
    busy_timeout: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    #: Records kept after a snapshot: ``False`` drops a room's records at or below its newest snapshot.
    keep_snapshotted: bool = False
