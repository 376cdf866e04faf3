"""Where the client's next reconnection attempt goes, and how long it waits first.

A client that lost its connection tries its current portal first (the loss may have been the
network's), then — when that address refuses or does not answer — the ``alternatives`` its portal
named (other live portals of its ISP, same region first), then the URL its token named, and round
again.  Moving on to the next address waits only ``failover_delay``; a whole round that failed, or a
portal that answers "not now", doubles the delay up to ``reconnection_delay_max``.  Every wait is
jittered by ``reconnection_jitter`` so that the clients of a dead portal do not arrive as one burst.
With no alternatives this is the plain exponential back-off on one address.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from .settings import ClientSettings

__all__ = ["FailoverPlan", "jittered"]


def jittered(delay: float, jitter: float, rng: random.Random | None = None) -> float:
    """``delay`` ± ``jitter`` × ``delay``, uniformly."""
    value = (rng or random).random()
    return delay * (1 + jitter * (2 * value - 1))


class FailoverPlan:
    """The addresses of one reconnection, in order, and the wait before each attempt.

    :param urls: the addresses in the order to try them; repeats are tried once.
    :param rng: the randomness of the jitter (seed it in tests).
    """

    def __init__(self, settings: ClientSettings, urls: Iterable[str], rng: random.Random | None = None) -> None:
        self._settings = settings
        self._urls = list(dict.fromkeys(u for u in urls if u))
        if not self._urls:
            raise ValueError("a failover plan needs at least one address")
        self._rng = rng
        self._index = 0
        self._delay = settings.reconnection_delay
        self._wait = settings.reconnection_delay

    @property
    def urls(self) -> list[str]:
        """Every address, in the order they are tried."""
        return list(self._urls)

    @property
    def url(self) -> str:
        """The address of the next attempt."""
        return self._urls[self._index]

    def wait(self) -> float:
        """Seconds to wait before the next attempt (jittered)."""
        return jittered(self._wait, self._settings.reconnection_jitter, self._rng)

    def unreachable(self) -> None:
        """The address refused the connection or never answered: the next one, soon; after a whole
        round, the first one again, after a longer delay."""
        self._index = (self._index + 1) % len(self._urls)
        if self._index == 0:
            self._back_off()
        else:
            self._wait = self._settings.failover_delay

    def busy(self) -> None:
        """The portal answered but cannot serve yet (its controller is moving): the same address,
        after a longer delay (another portal would ask the same controller)."""
        self._back_off()

    def _back_off(self) -> None:
        self._delay = min(self._delay * 2, self._settings.reconnection_delay_max)
        self._wait = self._delay
