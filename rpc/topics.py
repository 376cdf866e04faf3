"""Topic-exchange pattern matching (``*`` = one word, ``#`` = zero or more words)."""

from __future__ import annotations

import functools
import re

__all__ = ["topic_matches"]


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:[^.]+(?:\.[^.]+)*)?")
        elif word == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(word))
    regex = r"\.".join(parts)
    # '#' may also swallow the dot next to it ("exit.#" matches "exit").
    regex = regex.replace(r"\.(?:[^.]+(?:\.[^.]+)*)?", r"(?:\.[^.]+(?:\.[^.]+)*)?")
    regex = regex.replace(r"(?:[^.]+(?:\.[^.]+)*)?\.", r"(?:[^.]+(?:\.[^.]+)*\.)?")
    return re.compile(rf"^{regex}$")


def topic_matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` matches the AMQP topic ``pattern``."""
    return _compile(pattern).match(topic) is not None
