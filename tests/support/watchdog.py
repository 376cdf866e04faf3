"""The last resort against a test that hangs where pytest-timeout cannot reach it.

pytest-timeout (``timeout`` in ``pyproject.toml``) fails a test that runs too long by raising in the
main thread from ``SIGALRM``.  That is enough for a test that waits on the event loop; it is not for
one whose timeout was swallowed (a library that catches every exception and goes on), nor for a
teardown that hangs after the timeout fired (the alarm is not armed again), and one such hang used
the whole of a CI run.  This plugin watches every test from a thread, with a limit well past
pytest-timeout's (``limit_factor`` × the test's timeout + ``grace`` seconds, for setup, call and
teardown together).  Past it, it prints every thread's stack to the terminal and interrupts the
main thread, so pytest ends the session and reports what failed so far; if even that does not
return within ``grace`` seconds, it prints the stacks again and ends the process with status 3.
Either way the run is red within minutes, with the place it hung.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
from collections.abc import Generator

import pytest

__all__ = ["Watchdog", "limit_for"]

#: Seconds past pytest-timeout's limit before the watchdog acts, and again before it ends the process.
GRACE = 120.0
LIMIT_FACTOR = 1.5
EXIT_STATUS = 3


def limit_for(timeout: float | None, *, factor: float = LIMIT_FACTOR, grace: float = GRACE) -> float | None:
    """The watchdog's limit for a test whose pytest-timeout is ``timeout`` (``None`` or 0: no limit)."""
    if not timeout:
        return None
    return timeout * factor + grace


def _item_timeout(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    configured = item.config.getoption("timeout", None)
    if configured is None:
        configured = item.config.getini("timeout")
    return float(configured) if configured not in (None, "") else None


class Watchdog:
    """Watches one test at a time: :meth:`arm` when it starts, :meth:`disarm` when it ends."""

    def __init__(self, *, grace: float = GRACE) -> None:
        self._grace = grace
        # A copy of the terminal's stderr, taken before any test captures file descriptor 2.
        self._stderr = os.fdopen(os.dup(2), "w", closefd=True)
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def arm(self, nodeid: str, limit: float) -> None:
        with self._lock:
            self._cancel()
            self._timer = threading.Timer(limit, self._fire, args=(nodeid, limit))
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        with self._lock:
            self._cancel()

    def close(self) -> None:
        self.disarm()
        self._stderr.close()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _dump(self, headline: str) -> None:
        self._stderr.write(f"\n{'=' * 20} watchdog: {headline} {'=' * 20}\n")
        self._stderr.flush()
        faulthandler.dump_traceback(file=self._stderr, all_threads=True)
        self._stderr.flush()

    def _fire(self, nodeid: str, limit: float) -> None:
        self._dump(f"{nodeid} still running after {limit:.0f} s; every thread's stack")
        with self._lock:
            self._timer = threading.Timer(self._grace, self._exit, args=(nodeid,))
            self._timer.daemon = True
            self._timer.start()
        # A real SIGINT to the main thread (``_thread.interrupt_main`` would not wake a blocking call):
        # pytest stops the session and reports what failed so far.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def _exit(self, nodeid: str) -> None:
        self._dump(f"{nodeid}: the main thread did not stop {self._grace:.0f} s after the interrupt; ending")
        os._exit(EXIT_STATUS)


_KEY = pytest.StashKey[Watchdog]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("watchdog_factor", "the watchdog acts after this many times a test's timeout ...",
                  default=str(LIMIT_FACTOR))
    parser.addini("watchdog_grace", "... plus these seconds; and ends the process these seconds later",
                  default=str(GRACE))


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEY] = Watchdog(grace=float(config.getini("watchdog_grace")))


def pytest_unconfigure(config: pytest.Config) -> None:
    watchdog = config.stash.get(_KEY, None)
    if watchdog is not None:
        watchdog.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    watchdog = item.config.stash.get(_KEY, None)
    limit = limit_for(_item_timeout(item), factor=float(item.config.getini("watchdog_factor")),
                      grace=float(item.config.getini("watchdog_grace")))
    if watchdog is not None and limit is not None:
        watchdog.arm(item.nodeid, limit)
    try:
        yield
    finally:
        if watchdog is not None:
            watchdog.disarm()
