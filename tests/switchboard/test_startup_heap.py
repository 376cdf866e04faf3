"""Once a server is up, what its startup made is left out of the cyclic collector's full collections."""

from __future__ import annotations

import gc
import weakref

from switchboard import cli


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_startup_heap_is_frozen_after_its_garbage_is_collected() -> None:
    garbage = weakref.ref(_Cycle())  # unreachable, but only the cyclic collector can free it
    before = gc.get_freeze_count()
    try:
        cli._freeze_startup_heap()
        assert gc.get_freeze_count() > before
        assert garbage() is None  # collected first, not frozen with the rest
    finally:
        gc.unfreeze()
