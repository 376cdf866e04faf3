"""The client library's webhook check against what the server signs: a genuine recent delivery
passes; a forged body, a wrong secret, a stale or future timestamp and a malformed header do not."""

from __future__ import annotations

import json
import re

import pytest

from switchboard.client.webhooks import WebhookRejected, verify_webhook
from webhooks import sign

SECRET = "s3cret-for-the-verify-tests"
NOW = 1_800_000_000
BODY = json.dumps({"id": "abc-1", "type": "room.started", "room": "r", "seq": 1, "data": {}}).encode()


def test_a_genuine_recent_delivery_is_accepted() -> None:
    event = verify_webhook(BODY, sign(SECRET, NOW - 10, BODY), SECRET, now=NOW)
    assert event["id"] == "abc-1" and event["seq"] == 1


@pytest.mark.parametrize(("body", "header", "why"), [
    (BODY.replace(b"room.started", b"room.finished"), sign(SECRET, NOW, BODY), "does not match"),
    (BODY, sign("another-secret-entirely", NOW, BODY), "does not match"),
    (BODY, sign(SECRET, NOW, BODY).replace(f"t={NOW}", f"t={NOW + 1}"), "does not match"),
    (BODY, sign(SECRET, NOW - 301, BODY), "old"),
    (BODY, sign(SECRET, NOW + 301, BODY), "old"),
    (BODY, None, "no Switchboard-Signature"),
    (BODY, f"t={NOW}", "needs t="),
    (BODY, "t=soon,v1=00", "not a number"),
])
def test_a_forged_stale_or_malformed_signature_is_rejected(body: bytes, header: str | None, why: str) -> None:
    with pytest.raises(WebhookRejected, match=why):
        verify_webhook(body, header, SECRET, now=NOW)


def test_the_tolerance_is_the_callers() -> None:
    header = sign(SECRET, NOW - 100, BODY)
    assert verify_webhook(BODY, header, SECRET, now=NOW, tolerance=100)["seq"] == 1
    with pytest.raises(WebhookRejected, match="old"):
        verify_webhook(BODY, header, SECRET, now=NOW, tolerance=99)


_GOOD = {"name": "app", "url": "https://app.example/hooks", "secret": "Zq8v-3kP_x7TmW2rLc9YbN4hJd6Gf1sA"}


@pytest.mark.parametrize(("endpoints", "why"), [
    ([{**_GOOD, "events": ["room.started", "room.exploded"]}], "unknown event type"),
    ([{**_GOOD, "url": "ftp://app.example/hooks"}], "http"),
    ([_GOOD, _GOOD], "unique"),
])
def test_an_endpoint_that_cannot_work_is_refused_at_load(endpoints: list[dict[str, object]], why: str) -> None:
    from switchboard.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=why):
        load_settings(env={}, overrides={"webhooks": {"endpoints": endpoints}})
    from_env = load_settings(env={"SWITCHBOARD_WEBHOOKS__ENDPOINTS": json.dumps([_GOOD])})
    assert [e.name for e in from_env.webhooks.endpoints] == ["app"]


@pytest.mark.parametrize("secret", ["short-secret", "x" * 40])
def test_a_weak_secret_is_refused_like_any_key(secret: str) -> None:
    from switchboard.config import ConfigError, load_settings
    from switchboard.keys import check_configured_keys

    settings = load_settings(env={}, overrides={"webhooks": {"endpoints": [{**_GOOD, "secret": secret}]}})
    with pytest.raises(ConfigError, match=re.escape("webhooks.endpoints[0].secret")):
        check_configured_keys(settings)
    check_configured_keys(load_settings(env={}, overrides={"webhooks": {"endpoints": [_GOOD]}}))
