"""The browser tests' wait (``tests/support/browser.py``): an element the page redrew between being
found and being read (stale) is looked up again at the next poll instead of failing the test (the
status page redraws as boards arrive: one such read failed a CI run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import Browser


async def test_a_stale_element_is_looked_up_again() -> None:
    reads: Iterator[str | Exception] = iter([StaleElementReferenceException("redrawn"), "",
                                             "refused: not an admin key"])

    def message(driver: WebDriver) -> str | bool:
        read = next(reads)
        if isinstance(read, Exception):
            raise read
        return "not an admin key" in read and read

    browser = Browser(cast(WebDriver, object()))
    assert await browser.until(message, timeout=5.0) == "refused: not an admin key"
