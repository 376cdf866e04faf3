"""The media agents' contract and the reference agent the tests run cannot drift: every method the
agent serves has a ``MediaAgentClient`` method of the same parameters, and the client names no
method the agent does not serve."""

from __future__ import annotations

from contracts.media import MediaAgentClient
from tests.support.contract_check import client_mismatches
from tests.support.media_agent import MediaAgent


def test_every_method_of_the_reference_agent_has_a_client_method_of_the_same_shape() -> None:
    assert client_mismatches(MediaAgent, MediaAgentClient) == []


def test_the_test_fake_agent_has_the_same_shape_too() -> None:
    from tests.conference_controller.fakes import FakeAgent

    assert client_mismatches(FakeAgent, MediaAgentClient) == []
