"""The room journal: an append-only, fenced, durable log of each room's events (see :mod:`journal.base`)."""

from .base import Fenced, Journal, JournalRecord, JournalUnavailable, Snapshot

__all__ = ["Fenced", "Journal", "JournalRecord", "JournalUnavailable", "Snapshot"]
