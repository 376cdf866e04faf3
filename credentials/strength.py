"""Is a configured secret good enough to guard a cluster?  (Signing, service and admin keys.)"""

from __future__ import annotations

__all__ = ["MIN_KEY_LENGTH", "weak_key_reason"]

#: Shortest accepted secret, characters (32 random characters carry well over 128 bits).
MIN_KEY_LENGTH = 32

# Keys that appeared in the code, the docs or common examples: known to everyone, so no secret.
_KNOWN_EXAMPLES = frozenset(
    {
        "switchboard-development-key-change-me",
        "change-me-to-a-long-random-secret-string",
        "your-secret-key-here-change-me-please-now",
    }
)
_EXAMPLE_WORDS = ("change-me", "changeme", "change_me", "example", "your-secret", "replace-me")
_MIN_DISTINCT = 10


def weak_key_reason(key: str) -> str | None:
    """Why ``key`` must not be used (short, an example, too little variety), or ``None``."""
    if len(key) < MIN_KEY_LENGTH:
        return f"is shorter than {MIN_KEY_LENGTH} characters"
    lowered = key.lower()
    if lowered in _KNOWN_EXAMPLES or any(word in lowered for word in _EXAMPLE_WORDS):
        return "is a known example key"
    if len(set(key)) < _MIN_DISTINCT:
        return f"has fewer than {_MIN_DISTINCT} distinct characters"
    return None
