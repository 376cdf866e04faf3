"""The generated HAProxy configuration (``switchboard haproxy-config``), read back section by section
and checked by HAProxy itself (``haproxy -c``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from switchboard.cli import main
from switchboard.config import ConfigError, Settings, load_settings
from switchboard.loadbalancer import plan_from_settings, plan_from_workers, render_haproxy
from switchboard.supervisor import _children
from tests.support.haproxy import check_config, haproxy_path

_LB = {"SWITCHBOARD_LOAD_BALANCER__PUBLIC_HOST": "lb.example.net",
       "SWITCHBOARD_LOAD_BALANCER__FIRST_PORT": "9100",
       "SWITCHBOARD_LOAD_BALANCER__MAX_CONNECTIONS": "1000"}


def _sections(text: str) -> dict[str, list[str]]:
    """``{"frontend portal-9100": [directive, …], …}``: HAProxy's layout (a keyword line at column
    0 opens a section; indented lines are its directives; ``#`` starts a comment)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            current = sections.setdefault(line.strip(), [])
        else:
            assert current is not None, line
            current.append(" ".join(line.split()))
    return sections


def _servers(section: list[str]) -> list[tuple[str, str, bool]]:
    """``(name, address, backup)`` of each ``server`` line, in order."""
    out = []
    for line in section:
        words = line.split()
        if words[0] == "server":
            out.append((words[1], words[2], "backup" in words[3:]))
    return out


def _worker(port: int, public: int, isps: list[str], regions: list[str], **info: Any) -> dict[str, Any]:
    return {"id": f"portal-{port}@host", "purpose": "portal",
            "info": {"hostname": "10.0.0.1", "port": port, "via_host": f"lb.example.net:{public}", "secure": False,
                     "capacity": {"isps": isps, "regions": regions}, **info}}


_FOUR = [  # two groups of two, listed out of order
    _worker(8083, 9003, ["isp-b"], ["eu"]),
    _worker(8080, 9000, ["isp-a"], ["eu"]),
    _worker(8082, 9002, ["isp-b"], ["eu"]),
    _worker(8081, 9001, ["isp-a"], ["eu"]),
]


def test_each_portal_fails_over_to_its_isp_region_siblings_only() -> None:
    sections = _sections(render_haproxy(plan_from_workers(_FOUR), Settings()))
    backups = {}
    for public, own in ((9000, 8080), (9001, 8081), (9002, 8082), (9003, 8083)):
        assert f"bind 127.0.0.1:{public}" in sections[f"frontend portal-{public}"]
        assert f"default_backend portal-{public}" in sections[f"frontend portal-{public}"]
        servers = _servers(sections[f"backend portal-{public}"])
        assert servers[0] == (f"portal-{public}", f"10.0.0.1:{own}", False)  # its own portal first, active
        backups[public] = {address for _, address, backup in servers[1:] if backup}
        assert len(servers) == 1 + len(backups[public])
    assert backups == {9000: {"10.0.0.1:8081"}, 9001: {"10.0.0.1:8080"},
                       9002: {"10.0.0.1:8083"}, 9003: {"10.0.0.1:8082"}}


def test_backends_are_health_checked_sticky_and_websocket_aware() -> None:
    settings = load_settings(env={"SWITCHBOARD_LOAD_BALANCER__TUNNEL_TIMEOUT": "120",
                                  "SWITCHBOARD_LOAD_BALANCER__CHECK_INTERVAL": "0.25"})
    sections = _sections(render_haproxy(plan_from_workers(_FOUR[:2]), settings))
    defaults = sections["defaults"]
    assert "mode http" in defaults and "timeout tunnel 120000ms" in defaults and "option redispatch" in defaults
    assert any(line.startswith("default-server inter 250ms ") and "on-error mark-down" in line for line in defaults)
    backend = sections["backend portal-9000"]
    assert "http-check send meth GET uri /healthz" in backend
    assert "stick on url_param(sid)" in backend  # a long-polling session stays where it was opened
    assert all(line.endswith((" check", " check backup")) for line in backend if line.startswith("server "))


def test_the_local_cluster_announces_the_frontends_the_configuration_binds() -> None:
    settings = load_settings(env=_LB, overrides={"portal": {"port": 8200}})
    args = argparse.Namespace(config=None, host=None, managers=1, token_apis=1, controllers=1, portals=3)
    announced = [child.argv[child.argv.index("--via-host") + 1]
                 for child in _children(args, settings, {}) if child.name.startswith("portal-")]
    assert announced == ["lb.example.net:9100", "lb.example.net:9101", "lb.example.net:9102"]
    sections = _sections(render_haproxy(plan_from_settings(settings, 3), settings))
    for i in range(3):
        assert f"bind 127.0.0.1:{9100 + i}" in sections[f"frontend portal-{9100 + i}"]
        servers = _servers(sections[f"backend portal-{9100 + i}"])
        assert servers[0][1:] == (f"127.0.0.1:{8200 + i}", False)
        assert sorted(address for _, address, _ in servers[1:]) == sorted(
            f"127.0.0.1:{8200 + j}" for j in range(3) if j != i)


def test_without_a_load_balancer_the_local_portals_announce_themselves() -> None:
    args = argparse.Namespace(config=None, host=None, managers=1, token_apis=1, controllers=1, portals=2)
    assert all("--via-host" not in child.argv for child in _children(args, Settings(), {}))
    with pytest.raises(ConfigError, match="public_host"):
        plan_from_settings(Settings(), 2)


@pytest.mark.parametrize(
    ("workers", "settings", "reason"),
    [
        ([_worker(8080, 9000, [], [], via_host="")], {}, "announces no via_host"),
        ([_worker(8080, 9000, [], []), _worker(8081, 9000, [], [])], {}, "share a public port"),
        ([_worker(8080, 9000, [], [], secure=True)], {}, "certificate"),
        ([_worker(8080, 9000, [], [], hostname="evil\n    server x 6.6.6.6:80")], {}, "not host:port"),
        ([_worker(8080, 9000, [], [])], {"http_timeout": 30.0}, "ping_interval"),
        ([_worker(8080, 9000, [], [], secure=True)], {"certificate": "/etc/my cert.pem"}, "space"),
        ([_worker(8080, 9000, [], [])], {"bind_host": "0.0.0.0 #"}, "space"),
        ([], {}, "no portal"),
    ],
)
def test_a_configuration_haproxy_could_not_serve_is_refused(
    workers: list[dict[str, Any]], settings: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        render_haproxy(plan_from_workers(workers), load_settings(env={}, overrides={"load_balancer": settings}))


def test_haproxy_accepts_what_the_cli_generates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if haproxy_path() is None:
        pytest.fail("haproxy is not installed: `make test` (target haproxy) installs Debian's")
    for name, value in _LB.items():
        monkeypatch.setenv(name, value)
    workers = tmp_path / "workers.json"
    workers.write_text(json.dumps(_FOUR))
    for argv, out in ((["--workers", str(workers)], "cluster.cfg"), (["--portals", "3"], "local.cfg")):
        path = tmp_path / out
        assert main(["haproxy-config", *argv, "-o", str(path)]) == 0
        checked = check_config(path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len([s for s in _sections((tmp_path / "local.cfg").read_text()) if s.startswith("frontend ")]) == 3
    assert main(["haproxy-config"]) == 0  # to standard output
    assert "frontend portal-9100" in capsys.readouterr().out
    monkeypatch.delenv("SWITCHBOARD_LOAD_BALANCER__PUBLIC_HOST")
    assert main(["haproxy-config"]) == 2
    assert "public_host" in capsys.readouterr().err
