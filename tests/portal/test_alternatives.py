"""The other portals an extension client is told in its login and relogin answers (``alternatives``):
chosen by the cluster manager by the scheduler's rules for the participant's ISP and region, and
never the portal itself; nothing for a plain client."""

from __future__ import annotations

from typing import Any

from portal import Portal
from tests.support.waiting import wait_until

from .harness import ADMIN_KEY, Harness


def _url(portal: Portal) -> str:
    return f"http://127.0.0.1:{portal.port}"


async def _cluster(harness: Harness, **home_settings: Any) -> tuple[Portal, list[Portal], list[str]]:
    """Portal ``home`` serves ISP ``isp-0`` and a token for it ({isp: isp-0, region: region}); then
    siblings: same ISP and the token's region, same ISP and another region, any ISP and the token's
    region, another ISP only, and a drained one."""
    home = await harness.portal(**home_settings)
    tokens = [await harness.token(home), await harness.token(home, user="bob")]
    same_region = await harness.portal(isps=["isp-0"], regions=["region"])
    other_region = await harness.portal(isps=["isp-0"], regions=["elsewhere"])
    any_isp = await harness.portal(isps=[], regions=["region"])
    other_isp = await harness.portal(isps=["isp-other"], regions=["region"])
    drained = await harness.portal(isps=["isp-0"], regions=["region"])
    await harness.transport.call("cluster", "drain", {"worker_id": drained.worker_id, "admin_key": ADMIN_KEY})
    return home, [same_region, any_isp, other_region, other_isp, drained], tokens


async def test_a_login_names_the_siblings_of_the_participants_isp_its_region_first(harness: Harness) -> None:
    home, (same_region, any_isp, other_region, _, _), tokens = await _cluster(harness)
    client = await harness.client(home)
    status, result = await client.login(tokens[0], extension=True)
    assert status == "ok", result
    assert result["switchboard"]["alternatives"] == [_url(same_region), _url(any_isp), _url(other_region)]


async def test_a_relogin_names_them_too_and_a_plain_client_gets_none(harness: Harness) -> None:
    home, (same_region, any_isp, other_region, _, _), tokens = await _cluster(harness)
    client = await harness.client(home)
    status, result = await client.login(tokens[0], extension=True)
    assert status == "ok", result
    pid = result["id"]
    await client.lose_network()
    await wait_until(lambda: harness.held(pid), what="held at the controller")
    again = await harness.client(same_region)
    status, answer = await again.call("relogin", {"ticket": result["reconnectionTicket"], "lastSeq": None})
    assert status == "ok", answer
    # not the portal it is at; the token's region first, then the least loaded (home holds bob's
    # reservation)
    assert answer["alternatives"] == [_url(any_isp), _url(other_region), _url(home)]

    plain = await harness.client(home)
    status, plain_result = await plain.login(tokens[1])
    assert status == "ok" and "switchboard" not in plain_result


async def test_a_refresh_asked_with_an_object_renews_them_and_a_bare_one_stays_a_ticket_string(
    harness: Harness,
) -> None:
    # a list older than a millisecond is asked again (served once more while it comes)
    home, (same_region, any_isp, other_region, _, _), tokens = await _cluster(harness, alternatives_ttl=0.001)
    client = await harness.client(home)
    status, result = await client.login(tokens[0], extension=True)
    assert status == "ok", result
    status, bare = await client.call("refreshReconnectionTicket")
    assert status == "ok" and isinstance(bare, str)  # the OWT form, whatever the session
    await same_region.stop()  # gone from the cluster: no longer named once the list is renewed
    answers: list[Any] = []

    async def renewed() -> bool:
        status, answer = await client.call("refreshReconnectionTicket", {"alternatives": True})
        assert status == "ok", answer
        answers.append(answer)
        return bool(answer["alternatives"] == [_url(any_isp), _url(other_region)])

    await wait_until(renewed, what="the list without the stopped portal")
    assert harness.ticket_id(answers[-1]["ticket"]) != harness.ticket_id(bare)


async def test_a_cluster_manager_slow_to_name_them_delays_no_login_and_one_call_serves_many(
    harness: Harness,
) -> None:
    home, (same_region, any_isp, other_region, _, _), tokens = await _cluster(harness, alternatives_timeout=0.3)
    gate = harness.cluster_spy.stall_calls("portals")
    first = await harness.client(home)
    status, result = await first.login(tokens[0], extension=True)
    assert status == "ok" and result["switchboard"]["alternatives"] == []  # not waited for
    gate.set()
    second = await harness.client(home)
    status, result = await second.login(tokens[1], extension=True)
    assert status == "ok" and result["switchboard"]["alternatives"] == [
        _url(same_region), _url(any_isp), _url(other_region)]
    assert len(harness.cluster_spy.called("portals")) == 1  # the late answer was kept for the next login
