"""The observability port over HTTP: what ``/healthz``, ``/readyz`` and ``/metrics`` answer."""

from __future__ import annotations

import aiohttp
from prometheus_client import Counter

from observability import ObserveServer, ObserveSettings, Readiness, component_registry
from tests.support.processes import free_port


async def test_port_zero_serves_nothing() -> None:
    server = ObserveServer(ObserveSettings(), component_registry(), Readiness.serving)
    await server.start()
    assert (server.enabled, server.port) == (False, None)
    await server.stop()


async def test_health_readiness_and_metrics_over_http() -> None:
    registry = component_registry()
    Counter("switchboard_test_things", "Things", registry=registry).inc(3)
    state = {"readiness": Readiness.not_ready("not started", node="n1")}
    server = ObserveServer(ObserveSettings(port=free_port()), registry, lambda: state["readiness"])
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert (response.status, await response.json()) == (200, {"status": "ok"})
            async with http.get(f"{base}/readyz") as response:
                assert (response.status, await response.json()) == (
                    503, {"ready": False, "status": "not_ready", "reason": "not started", "node": "n1"})
            state["readiness"] = Readiness.serving(node="n1", role="active")
            async with http.get(f"{base}/readyz") as response:
                assert (response.status, await response.json()) == (
                    200, {"ready": True, "status": "ready", "node": "n1", "role": "active"})
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                text = await response.text()
    finally:
        await server.stop()
    assert "switchboard_test_things_total 3.0" in text
    assert "process_cpu_seconds_total" in text and "python_gc_objects_collected_total" in text
