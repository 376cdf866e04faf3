"""The journal a controller writes its rooms' events to, built from ``[journal]``."""

from __future__ import annotations

from pathlib import Path

import msgspec

from journal import Journal
from journal.holder import HolderJournal
from journal.logfile import FileJournal
from journal.memory import MemoryJournal
from journal.sqlite import SqliteJournal
from journal.stream import StreamJournal

from .config import ConfigError, Settings
from .localkeys import state_path

__all__ = ["build_journal", "journal_kind", "sqlite_path", "file_journal_path"]


def journal_kind(settings: Settings, *, embedded: bool) -> str:
    """The kind ``auto`` stands for: ``file`` embedded (``switchboard up``; opened empty, it takes
    over the rooms of the SQLite journal an earlier version left at ``journal.sqlite.path``),
    ``holder`` for a controller on a broker, ``sqlite`` for a controller process without one."""
    kind = settings.journal.kind
    if kind != "auto":
        return kind
    if embedded:
        return "file"
    return "holder" if settings.rpc.broker_url else "sqlite"


def sqlite_path(settings: Settings) -> Path:
    """``journal.sqlite.path``, or ``journal.sqlite3`` beside the key state file."""
    configured = settings.journal.sqlite.path
    if configured:
        return Path(configured).expanduser()
    return state_path(settings.keys.state_file).with_name("journal.sqlite3")


def file_journal_path(settings: Settings) -> Path:
    """``journal.file.path``, or the directory ``journal.d`` beside the key state file."""
    configured = settings.journal.file.path
    if configured:
        return Path(configured).expanduser()
    return state_path(settings.keys.state_file).with_name("journal.d")


def build_journal(settings: Settings, *, embedded: bool) -> Journal | None:
    """The journal (not opened yet), or ``None`` for ``off``.

    :raises ConfigError: a kind this process cannot use.
    """
    kind = journal_kind(settings, embedded=embedded)
    if kind == "off":
        return None
    if kind == "memory":
        return MemoryJournal()
    if kind == "sqlite":
        return SqliteJournal(sqlite_path(settings), settings.journal.sqlite)
    if kind == "file":
        # An embedded server whose journal was SQLite until now keeps its rooms: imported at the first open.
        return FileJournal(file_journal_path(settings), settings.journal.file, import_from=sqlite_path(settings))
    if not settings.rpc.broker_url:
        raise ConfigError(f"journal.kind = '{kind}' needs a broker: give --broker amqp://… (or rpc.broker_url)")
    stream = settings.journal.stream
    if not stream.prefix:
        stream = msgspec.structs.replace(stream, prefix=f"{settings.worker.cluster_name}.journal.")
    if kind == "holder":
        return HolderJournal(settings.rpc.broker_url, stream, name=settings.worker.cluster_name)
    return StreamJournal(settings.rpc.broker_url, stream, name=settings.worker.cluster_name)
