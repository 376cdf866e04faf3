"""Which processes of ``switchboard up --broker`` serve health and metrics, and on which port."""

from __future__ import annotations

import argparse

from switchboard.config import load_settings
from switchboard.supervisor import _children


def _observe_ports(overrides: dict[str, object]) -> dict[str, int]:
    settings = load_settings(env={}, overrides=overrides)
    args = argparse.Namespace(config=None, host=None, managers=2, token_apis=1, controllers=3, portals=1)
    return {child.name: int(child.argv[child.argv.index("--observe-port") + 1])
            for child in _children(args, settings, {}) if "--observe-port" in child.argv}


def test_none_by_default() -> None:
    assert _observe_ports({}) == {}


def test_each_process_of_a_role_gets_the_next_port() -> None:
    ports = _observe_ports({"controller": {"observe": {"port": 9300}}, "cluster_manager": {"observe": {"port": 9400}}})
    assert ports == {"cluster-manager-1": 9400, "cluster-manager-2": 9401,
                     "controller-1": 9300, "controller-2": 9301, "controller-3": 9302}
