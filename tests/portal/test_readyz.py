"""A portal's ``/readyz`` (docs/operations.md, *Health and metrics*): ready while it serves, is joined
to the cluster and reaches the others; 503 with the reason otherwise."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import MakeEmbedded


async def _readyz(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        return response.status, await response.json()


async def test_a_portal_is_ready_while_it_serves_and_not_once_its_link_is_gone(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded()
    portal = server.components["portal"]
    url = f"http://127.0.0.1:{portal.port}"
    assert await _readyz(url) == (200, {"ready": True, "status": "ready", "worker_id": portal.worker_id})
    await portal.transport.close()  # its link to the cluster is gone; its HTTP port still answers
    status, body = await _readyz(url)
    assert (status, body["ready"], body["reason"]) == (503, False, "broker connection lost"), body
