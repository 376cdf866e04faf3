"""The whole-system fixtures (``make_embedded``, ``process_cluster``) live in ``tests/conftest.py``;
the fault scenarios' results recorder (``chaos``) in ``tests/support/chaos.py``."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.support.chaos import chaos  # noqa: F401 - the fixture, for the fault scenarios


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """Keeps the call phase's report on the item, for ``chaos`` to write the test's outcome."""
    outcome = yield
    if call.when == "call":
        item.chaos_call_report = outcome.get_result()  # type: ignore[attr-defined]
