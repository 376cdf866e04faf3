"""Structured log events of the cluster manager: one event per line, ``event key=value ...``.

The fields also ride on the record as ``record.event`` and ``record.fields`` so that a JSON
formatter can emit them without parsing the message.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

__all__ = ["log", "log_event"]

log = logging.getLogger("switchboard.cluster_manager")

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@")


def _format(value: Any) -> str:
    if isinstance(value, str) and value and set(value) <= _PLAIN:
        return value
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return msgspec.json.encode(value, enc_hook=repr).decode()


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` (worker ids, purposes, counts) on one line."""
    if not log.isEnabledFor(level):
        return
    text = " ".join(f"{key}={_format(value)}" for key, value in fields.items())
    log.log(level, "%s %s", event, text, extra={"event": event, "fields": fields})
