"""HTTP behaviour: JSON errors for every failure, body limits, CORS, health, readiness, metrics."""

from __future__ import annotations

import pytest

from cluster_manager import admin_rpc_routes
from token_api import TokenApi, TokenApiSettings

from .conftest import ADMIN_KEY, Stack


async def test_unknown_routes_and_wrong_methods_are_json(stack: Stack) -> None:
    await stack.start_api()
    response = await stack.session.get(stack.url("/nowhere"))
    assert response.status == 404
    assert (await response.json())["error"] == {"code": 1001, "message": "Not Found", "reason": "not_found"}

    response = await stack.session.post(stack.url("/v1/rooms/x"))
    assert response.status == 405
    assert "Allow" in response.headers
    assert (await response.json())["error"]["reason"] == "method_not_allowed"


async def test_bad_json_is_400_with_owt_message(stack: Stack) -> None:
    await stack.start_api()
    response = await stack.session.post(
        stack.url("/token"), data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == {
        "code": 1201, "message": "Failed to parse JSON body", "reason": "invalid_json",
    }
    response = await stack.post_token({"room": "r", "user": 5, "role": "viewer"})
    assert response.status == 400
    message = (await response.json())["error"]["message"]
    assert "user" in message and "str" in message
    response = await stack.post_token({"room": "r", "user": "u", "role": "viewer", "extra": 1})
    assert response.status == 400


async def test_oversized_bodies_are_413(stack: Stack) -> None:
    await stack.start_api(client_max_size=1024)
    response = await stack.post_token({"room": "r", "user": "u" * 2000, "role": "viewer"})
    assert response.status == 413
    assert (await response.json())["error"]["reason"] == "body_too_large"


async def test_cors_preflight_and_headers_for_any_origin(stack: Stack) -> None:
    await stack.start_api()
    preflight = await stack.session.options(
        stack.url("/v1/rooms/r/tokens"),
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type, authorization"},
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "content-type, authorization"

    response = await stack.session.get(stack.url("/nowhere"), headers={"Origin": "https://app.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_with_a_list_of_origins(stack: Stack) -> None:
    await stack.start_api(cors_allowed_origins=["https://good.example"])
    good = await stack.session.get(stack.url("/healthz"), headers={"Origin": "https://good.example"})
    assert good.headers["Access-Control-Allow-Origin"] == "https://good.example"
    assert "Origin" in good.headers.getall("Vary")
    bad = await stack.session.get(stack.url("/healthz"), headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in bad.headers
    preflight = await stack.session.options(
        stack.url("/token"), headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Methods" not in preflight.headers


async def test_healthz_is_up_while_readyz_follows_the_cluster(stack: Stack) -> None:
    await stack.start_api(readiness_timeout=0.3)
    assert (await stack.session.get(stack.url("/healthz"))).status == 200

    response = await stack.session.get(stack.url("/readyz"))
    assert response.status == 503
    assert "unreachable" in (await response.json())["reason"]

    await stack.start_manager()
    response = await stack.session.get(stack.url("/readyz"))
    assert response.status == 503
    assert (await response.json())["reason"] == "no schedulable portal"

    await stack.add_portal("portal-a")
    response = await stack.session.get(stack.url("/readyz"))
    assert response.status == 200
    assert (await response.json()) == {"ready": True, "reason": "ok", "schedulablePortals": 1}


async def test_readyz_is_503_while_the_manager_is_not_ready(stack: Stack) -> None:
    await stack.start_manager(fresh=True, initial_time=30.0)
    await stack.add_portal("portal-a")
    await stack.start_api()
    response = await stack.session.get(stack.url("/readyz"))
    assert response.status == 503
    assert "initializing" in (await response.json())["reason"]


async def test_metrics_are_prometheus_text_per_app(stack: Stack) -> None:
    await stack.start_api()
    await stack.start_api()
    response = await stack.session.get(stack.url("/metrics"))
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert "switchboard_tokens_minted" in await response.text()


@pytest.mark.parametrize("path", ["/v1/rooms/%00bad/tokens", "/v1/rooms/" + "x" * 200 + "/tokens"])
async def test_invalid_room_ids_in_paths_are_400(stack: Stack, path: str) -> None:
    await stack.start_api()
    response = await stack.session.post(stack.url(path), json={"user": "u", "role": "viewer"})
    assert response.status == 400
    assert (await response.json())["error"]["reason"] == "invalid_room_id"


async def test_extra_routes_are_served_beside_the_api(stack: Stack) -> None:
    await stack.start_manager()
    assert stack.client is None
    stack.client = await stack.transports.make("admin-client")
    api = TokenApi(
        await stack.transports.make("token-api-admin"),
        TokenApiSettings(host="127.0.0.1", port=0, rooms_db=str(stack.tmp_path / "admin.sqlite3"),
                         cors_allowed_origins=["*"], service_keys={"svc": "key"}),
        stack.keyring,
        cluster_name=stack.cluster_name,
        extra_routes=admin_rpc_routes(stack.client, stack.cluster_name),
    )
    await api.start()
    stack.apis.append(api)

    response = await stack.anonymous.post(stack.url("/admin/rpc"), json={"method": "status"},
                                          headers={"Origin": "https://ops.example", "Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status == 200
    assert (await response.json())["result"]["name"] == stack.cluster_name
    # an admin route never opens to other origins, whatever the token API's CORS setting
    assert "Access-Control-Allow-Origin" not in response.headers
