"""Switchboard's scheduler: a pure library (no I/O, clock injected) that chooses workers for tasks.

One :class:`Scheduler` per worker purpose keeps the workers (state, load, info, tasks) and the
task reservations, and chooses a worker for a new task with the purpose's matcher and a strategy.
See ``docs/scheduler.md`` for the rules and how they differ from OWT's.

>>> s = Scheduler("portal", "least-used", clock=lambda: 0.0)
>>> s.add_worker("portal-1", {"capacity": {"isps": ["isp-a"], "regions": []}})
>>> s.schedule("token-1", {"isp": "isp-a"})
'portal-1'
"""

from __future__ import annotations

from . import errors
from .errors import *  # noqa: F403 - the errors are part of the package's surface
from .matchers import MATCHER_FOR_PURPOSE, Matcher, Query, create_matcher, matcher_for
from .scheduler import STATE_NAMES, Scheduler
from .strategies import (
    DEFAULT_STRATEGIES,
    STRATEGY_NAMES,
    Strategy,
    create_strategy,
    default_strategy_for,
)

__all__ = [
    "Scheduler",
    "STATE_NAMES",
    "Strategy",
    "create_strategy",
    "default_strategy_for",
    "DEFAULT_STRATEGIES",
    "STRATEGY_NAMES",
    "Matcher",
    "Query",
    "create_matcher",
    "matcher_for",
    "MATCHER_FOR_PURPOSE",
]
__all__ += errors.__all__
