"""What the holder journal's test files share: small stream sizes, and journals opened on the session
broker under one fresh prefix per test, closed at its end."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from journal.holder import HolderJournal
from journal.settings import StreamJournalSettings

__all__ = ["MakeJournal", "holder_settings", "journal_maker"]

MakeJournal = Callable[..., Awaitable[HolderJournal]]


def holder_settings(prefix: str, **overrides: object) -> StreamJournalSettings:
    """Small streams (tests make many) under ``prefix``, with ``overrides``."""
    base: dict[str, object] = {"prefix": prefix, "room_max_bytes": 5_000_000, "room_segment_bytes": 1_000_000,
                               "snapshot_max_bytes": 200_000, "snapshot_segment_bytes": 100_000,
                               "rooms_max_bytes": 1_000_000, "rooms_segment_bytes": 500_000,
                               "holder_max_bytes": 5_000_000, "holder_segment_bytes": 1_000_000}
    base.update(overrides)
    return StreamJournalSettings(**base)  # type: ignore[arg-type]


def journal_maker(broker_url: str, made: list[HolderJournal], name: str, **defaults: object) -> MakeJournal:
    """Opens journals named ``<name>-<n>`` sharing one fresh prefix, with ``defaults`` then the call's
    overrides; each is appended to ``made`` (the test's fixture closes them)."""
    prefix = f"{name[0]}{uuid.uuid4().hex[:8]}."

    async def make(**overrides: object) -> HolderJournal:
        journal = HolderJournal(broker_url, holder_settings(prefix, **{**defaults, **overrides}),
                                name=f"{name}-{len(made)}")
        made.append(journal)
        await journal.open()
        return journal

    return make
