"""Scheduling strategies and the factory that builds one from its configuration name.

>>> create_strategy("two-choices").name
'two-choices'

Unknown names are rejected with :class:`~scheduler.errors.UnknownStrategy` (OWT silently fell back
to ``randomly-pick``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType

from ..errors import UnknownStrategy
from .base import CandidateIndex, Strategy
from .load import LeastUsed, MostUsed
from .randomized import RandomlyPick, TwoChoices
from .rotation import LastUsed, RoundRobin, WeightRobin

__all__ = [
    "Strategy",
    "CandidateIndex",
    "LeastUsed",
    "MostUsed",
    "LastUsed",
    "RoundRobin",
    "WeightRobin",
    "RandomlyPick",
    "TwoChoices",
    "STRATEGIES",
    "STRATEGY_NAMES",
    "DEFAULT_STRATEGIES",
    "FALLBACK_STRATEGY",
    "create_strategy",
    "default_strategy_for",
]

#: Strategy classes by configuration name.
STRATEGIES: Mapping[str, type[Strategy]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (LeastUsed, MostUsed, LastUsed, RoundRobin, RandomlyPick, WeightRobin, TwoChoices)
    }
)

#: Every accepted strategy name, sorted.
STRATEGY_NAMES: tuple[str, ...] = tuple(sorted(STRATEGIES))

#: OWT's default strategy per purpose.
DEFAULT_STRATEGIES: Mapping[str, str] = MappingProxyType(
    {
        "portal": "last-used",
        "conference": "last-used",
        "webrtc": "last-used",
        "general": "last-used",
        "sip": "round-robin",
        "streaming": "round-robin",
        "recording": "randomly-pick",
        "audio": "most-used",
        "video": "least-used",
        "analytics": "least-used",
    }
)

#: The strategy of a purpose that :data:`DEFAULT_STRATEGIES` does not list.
FALLBACK_STRATEGY = "last-used"


def default_strategy_for(purpose: str) -> str:
    """OWT's default strategy name for ``purpose`` (``last-used`` for unlisted purposes)."""
    return DEFAULT_STRATEGIES.get(purpose, FALLBACK_STRATEGY)


def create_strategy(name: str, rng: random.Random | None = None) -> Strategy:
    """Build the strategy called ``name``.

    :param name: one of :data:`STRATEGY_NAMES`.
    :param rng: the source of randomness for random strategies (a fresh ``random.Random`` if
        ``None``); pass a seeded one in tests.
    :raises UnknownStrategy: for any other name.
    """
    cls = STRATEGIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise UnknownStrategy(
            f"unknown scheduling strategy {name!r}; expected one of: {', '.join(STRATEGY_NAMES)}"
        )
    return cls(rng)
