"""The embedded server's ``/metrics`` (its token API's) stands for the process: the controller's
rooms, participants, outbox and journal are there too (docs/operations.md, *Health and metrics*)."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from switchboard.client import Client
from tests.conftest import MakeEmbedded


async def _gauges(api_url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{api_url}/metrics") as response:
        text = await response.text()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("switchboard_controller_")}


async def test_the_embedded_metrics_count_the_controllers_rooms_and_participants(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded()
    before = await _gauges(server.api_url)
    assert (before["switchboard_controller_rooms"], before["switchboard_controller_participants"]) == (0, 0)
    alice = await Client.join(server.api_url, api_headers=server.service_headers, room="counted", user="alice",
                              role="presenter")
    try:
        during = await _gauges(server.api_url)
        assert (during["switchboard_controller_rooms"], during["switchboard_controller_participants"]) == (1, 1)
        assert during["switchboard_controller_journal_appends_total"] > before[
            "switchboard_controller_journal_appends_total"]
    finally:
        await alice.leave()
