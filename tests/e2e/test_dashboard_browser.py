"""The status page in headless Chromium: login, the workers of an embedded server and of a process
cluster, live updates when a worker is killed, drain and undrain with a confirmation, and refusals
without the credential.  Each state is saved under ``build/test-artifacts/dashboard/``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions

from switchboard.client import Client
from tests.conftest import MakeEmbedded
from tests.support.browser import Browser
from tests.support.processes import ProcessCluster


@pytest.fixture
def browser() -> Iterator[Browser]:
    started = Browser.start()
    yield started
    started.quit()


def _status_of(worker_id: str) -> Callable[[WebDriver], str | None]:
    def status(driver: WebDriver) -> str | None:
        try:
            rows = driver.find_elements(By.CSS_SELECTOR, f'tr.worker[data-worker-id="{worker_id}"]')
            return rows[0].get_attribute("data-status") if rows else None
        except StaleElementReferenceException:
            return None

    return status


def _has(css: str) -> Callable[[WebDriver], bool]:
    def found(driver: WebDriver) -> bool:
        return bool(driver.find_elements(By.CSS_SELECTOR, css))

    return found


def _click(css: str) -> Callable[[WebDriver], bool]:
    """Click the element (the page redraws as boards arrive: a stale one is looked up again)."""

    def click(driver: WebDriver) -> bool:
        try:
            found = driver.find_elements(By.CSS_SELECTOR, css)
            if not found:
                return False
            found[0].click()
            return True
        except StaleElementReferenceException:
            return False

    return click


async def _log_in(browser: Browser, api_url: str, admin_key: str) -> None:
    await browser.run(browser.driver.get, f"{api_url}/dashboard")
    field = await browser.until(expected_conditions.presence_of_element_located((By.ID, "admin_key")))
    await browser.run(field.send_keys, admin_key)
    await browser.run(browser.driver.find_element(By.ID, "login-button").click)


async def _logged_in(browser: Browser, api_url: str, admin_key: str) -> None:
    await _log_in(browser, api_url, admin_key)
    await browser.until(_has('#live[data-state="live"]'), what="the page is live")


async def _confirm_and(browser: Browser, css: str, *, accept: bool = True) -> None:
    await browser.until(_click(css), what=f"clicked {css}")
    alert = await browser.until(expected_conditions.alert_is_present(), what="the confirmation")
    assert alert is not False and "rain" in alert.text
    await browser.run(alert.accept if accept else alert.dismiss)


async def test_the_page_refuses_without_the_key_and_drains_a_worker_of_an_embedded_server(
    make_embedded: MakeEmbedded, browser: Browser
) -> None:
    cluster = await make_embedded()
    manager = cluster.cluster_manager
    portal = manager.registry.schedulers["portal"].workers_view()[0]["id"]
    controller = manager.registry.schedulers["conference"].workers_view()[0]["id"]
    driver = browser.driver

    for path in ("/dashboard/state", "/dashboard/events"):
        await browser.run(driver.get, f"{cluster.api_url}{path}")
        assert "unauthorized" in await browser.run(lambda: driver.find_element(By.TAG_NAME, "body").text)
    await browser.run(driver.get, f"{cluster.api_url}/dashboard")
    await browser.until(_has("#admin_key"))
    assert portal not in await browser.run(lambda: driver.page_source)
    await browser.screenshot("01-login")

    await _log_in(browser, cluster.api_url, "not-the-admin-key-of-this-cluster-at-all")
    await browser.until(lambda d: "not an admin key" in d.find_element(By.ID, "message").text, what="refused")
    await browser.screenshot("02-wrong-key")

    alice = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="standup", user="alice",
                              role="presenter")
    try:
        await _logged_in(browser, cluster.api_url, cluster.admin_key)
        assert await browser.until(_status_of(portal)) == "in_service"
        assert await browser.until(_status_of(controller)) == "in_service"
        await browser.until(_has('.managers li[data-role="active"]'))
        await browser.until(_has('#timeline li[data-kind="manager_active"]'))
        room = await browser.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#rooms tr[data-room="standup"] td'))
        assert [await browser.run(lambda: cell.text) for cell in room][1:] == ["1", controller]
        await browser.screenshot("03-embedded")
    finally:
        await alice.close()

    # Dismissed: nothing changes.
    await _confirm_and(browser, f'tr[data-worker-id="{portal}"] button.drain', accept=False)
    assert not manager.registry.schedulers["portal"].worker_view(portal)["drained"]

    await _confirm_and(browser, f'tr[data-worker-id="{portal}"] button.drain')
    await browser.until(lambda d: _status_of(portal)(d) == "draining", what="the portal draining")
    await browser.until(_has(f'#timeline li[data-kind="worker_drained"][data-worker="{portal}"]'))
    assert manager.registry.schedulers["portal"].worker_view(portal)["drained"]
    await browser.screenshot("04-drained")

    await _confirm_and(browser, f'tr[data-worker-id="{portal}"] button.undrain')
    await browser.until(lambda d: _status_of(portal)(d) == "in_service", what="the portal back in service")
    await browser.until(_has(f'#timeline li[data-kind="worker_undrained"][data-worker="{portal}"]'))
    assert not manager.registry.schedulers["portal"].worker_view(portal)["drained"]
    await browser.screenshot("05-undrained")


@pytest.mark.amqp
async def test_a_killed_portal_of_a_process_cluster_turns_lost_on_the_page_with_its_fault(
    process_cluster: Callable[..., ProcessCluster], browser: Browser
) -> None:
    cluster = process_cluster(portals=2, controllers=1, managers=2)
    await cluster.start()
    portal = await cluster.worker_id("portal-1")
    other = await cluster.worker_id("portal-2")
    controllers = await cluster.admin("get_workers", purpose="conference")

    await _logged_in(browser, cluster.api_url, cluster.admin_key)
    for worker in (portal, other, controllers[0]["id"]):
        assert await browser.until(_status_of(worker)) == "in_service"
    await browser.until(_has('.managers li[data-role="standby"]'), what="the standby manager")
    await browser.screenshot("06-cluster")

    cluster.kill("portal-1")  # SIGKILL
    # Detection: the broker's connection event (~0.3 s), else keepalives (here 3 × 0.5 s sweeps).
    await browser.until(lambda d: _status_of(portal)(d) == "lost", timeout=15.0, what="the killed portal lost")
    await browser.until(_has(f'#timeline li[data-kind="worker_lost"][data-worker="{portal}"]'), timeout=5.0)
    assert _status_of(other)(browser.driver) == "in_service"
    await browser.screenshot("07-cluster-portal-lost")
    await browser.run(browser.driver.execute_script, "document.getElementById('timeline').scrollIntoView()")
    await browser.screenshot("08-cluster-timeline")
