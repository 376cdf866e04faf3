"""Debian's headless Chromium driven by Selenium, for the status page's tests (``make chromium``
installs ``chromium`` and ``chromium-driver``).

Selenium blocks; a test on the event loop that also runs the server calls it through
:meth:`Browser.run` (a thread), so the server keeps serving while the browser waits.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

__all__ = ["Browser", "ARTIFACTS"]

#: Where each state of the page is saved as a screenshot (``build/`` is ignored by git).
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "dashboard"

_T = TypeVar("_T")


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/lib/chromium")
    if found is None:
        raise RuntimeError(f"{name} is not installed; `make chromium` installs it")
    return found


class Browser:
    """One headless Chromium with a phone-sized window (412 × 915 CSS pixels)."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    @classmethod
    def start(cls) -> Browser:
        options = webdriver.ChromeOptions()
        options.binary_location = _binary("chromium")
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=412,915", "--disable-extensions", "--no-first-run"):
            options.add_argument(argument)
        return cls(webdriver.Chrome(options=options, service=Service(_binary("chromedriver"))))

    async def run(self, action: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(action, *args)

    async def until(self, condition: Callable[[WebDriver], _T], timeout: float = 20.0, what: str = "") -> _T:
        """Wait (polling in a thread) until ``condition(driver)`` is truthy; returns its value.  An
        element the page redrew between finding and reading it (stale) is looked up again at the next
        poll, like one not there yet."""
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
        return await self.run(wait.until, condition, what)

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.run(self.driver.save_screenshot, str(path))
        return path

    def quit(self) -> None:
        self.driver.quit()
