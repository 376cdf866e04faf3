"""The container image and the reference cluster's compose file (``Dockerfile``, ``deploy/``), checked
without building or pulling anything: every command is one the ``switchboard`` CLI parses, every
environment name is a setting the real loader accepts (and sets), the ports line up, every role runs
at least twice, and HAProxy's configuration is what ``switchboard haproxy-config`` makes."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import yaml  # type: ignore[import-untyped]  # no stubs installed; PyYAML itself is a test dependency

from switchboard.cli import _parser
from switchboard.config import load_settings
from switchboard.loadbalancer import plan_from_workers, render_haproxy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ROLES = ("cluster-manager", "token-api", "controller", "portal")
#: ``${NAME:?message}`` or ``${NAME}``: compose's interpolation, filled with a sample value here.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def _interpolate(text: str) -> str:
    return _VARIABLE.sub(lambda m: f"sample-{m['name'].lower().replace('_', '-')}", text)


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(_interpolate((DEPLOY / "compose.yaml").read_text()))
    assert isinstance(loaded, dict)
    return loaded


def _switchboard_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items()
            if service.get("image", "").startswith("switchboard")}


def _get(settings: object, path: list[str]) -> Any:
    value: Any = msgspec.to_builtins(settings)
    for part in path:
        value = value[part]
    return value


def test_every_role_runs_at_least_twice_beside_a_broker_a_database_and_the_load_balancer() -> None:
    compose = _compose()
    services = compose["services"]
    ours = _switchboard_services(compose)
    roles = [service["command"][0] for service in ours.values()]
    assert {role: roles.count(role) for role in ROLES} == {role: 2 for role in ROLES}
    assert services["rabbitmq"]["image"].startswith("rabbitmq:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["haproxy"]["image"].startswith("haproxy:")
    for service in ours.values():
        assert service["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        depends = service["depends_on"]
        assert set(depends) == {"rabbitmq", "postgres"}
    # the broker's plugins: what the cluster manager's fast failure detection needs
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in services["rabbitmq"]["volumes"]}
    plugins = (DEPLOY / mounted["/etc/rabbitmq/enabled_plugins"]).read_text()
    assert "rabbitmq_event_exchange" in plugins


def test_every_command_is_one_the_cli_parses_and_every_environment_name_a_setting() -> None:
    compose = _compose()
    parser = _parser()
    for name, service in _switchboard_services(compose).items():
        args = parser.parse_args(service["command"])  # unknown options exit (SystemExit fails the test)
        assert args.command in ROLES, name
        env = {key: str(value) for key, value in service["environment"].items()}
        settings = load_settings(None, env=env)  # an unknown name is a ConfigError
        for key, raw in env.items():
            assert key.startswith("SWITCHBOARD_") and "__" in key, key
            path = key[len("SWITCHBOARD_"):].lower().split("__")
            try:
                expected = json.loads(raw)
            except ValueError:
                expected = raw
            assert _get(settings, path) == expected, (name, key)
        broker = settings.rpc.broker_url
        assert broker.startswith("amqp://") and "@rabbitmq:5672/" in broker
        assert "@postgres:5432/" in settings.token_api.store.dsn
        postgres_env = compose["services"]["postgres"]["environment"]
        assert settings.token_api.store.dsn.endswith("/" + postgres_env["POSTGRES_DB"])
        assert settings.token_api.store.dsn.startswith(f"postgresql://{postgres_env['POSTGRES_USER']}:")
        rabbit_env = compose["services"]["rabbitmq"]["environment"]
        assert broker.startswith(f"amqp://{rabbit_env['RABBITMQ_DEFAULT_USER']}:{rabbit_env['RABBITMQ_DEFAULT_PASS']}@")


def test_published_ports_reach_the_ports_the_services_listen_on() -> None:
    compose = _compose()
    parser = _parser()
    for name, service in _switchboard_services(compose).items():
        args = parser.parse_args(service["command"])
        if args.command in ("token-api", "portal"):
            assert args.host == "0.0.0.0", name
        for published in service.get("ports", []):
            assert int(published.split(":")[1]) == args.port, name
    apis = [s for s in _switchboard_services(compose).values() if s["command"][0] == "token-api"]
    assert sorted(int(p.split(":")[0]) for s in apis for p in s["ports"]) == [3000, 3001]
    haproxy = compose["services"]["haproxy"]
    frontends = sorted(int(line.split(":")[-1]) for line in (DEPLOY / "haproxy.cfg").read_text().splitlines()
                       if line.strip().startswith("bind "))
    assert sorted(int(p.split(":")[1]) for p in haproxy["ports"]) == frontends
    assert haproxy["volumes"] == ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]


def test_the_haproxy_configuration_is_what_switchboard_makes_for_these_portals() -> None:
    compose = _compose()
    workers = json.loads((DEPLOY / "portals.json").read_text())
    parser = _parser()
    portals = {name: parser.parse_args(s["command"]) for name, s in _switchboard_services(compose).items()
               if s["command"][0] == "portal"}
    # portals.json describes the compose file's portals as they announce themselves
    assert {w["id"]: (w["info"]["hostname"], w["info"]["port"], w["info"]["via_host"]) for w in workers} == {
        name: (args.hostname, args.port, args.via_host) for name, args in portals.items()}
    settings = load_settings(None, env={"SWITCHBOARD_LOAD_BALANCER__BIND_HOST": "0.0.0.0"})
    expected = render_haproxy(plan_from_workers(workers), settings, source="the cluster's portals")
    assert (DEPLOY / "haproxy.cfg").read_text() == expected


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_holds_every_package_and_runs_the_cli() -> None:
    steps = _instructions((ROOT / "Dockerfile").read_text())
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11")
    copied = {shlex.split(args)[0] for op, args in steps if op == "COPY"}
    for source in copied:
        assert (ROOT / source).exists(), source
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, packages - copied
    installs = [args for op, args in steps if op == "RUN" and "pip install" in args]
    assert len(installs) == 1
    extras = re.search(r'"\.\[(?P<extras>[^\]]*)\]"', installs[0])
    assert extras is not None
    assert set(extras["extras"].split(",")) <= set(pyproject["project"]["optional-dependencies"])
    assert "postgres" in extras["extras"]  # the reference cluster's room store
    entry = json.loads(dict(steps)["ENTRYPOINT"])
    assert entry == list(pyproject["project"]["scripts"]) == ["switchboard"]
    command = json.loads(dict(steps)["CMD"])
    assert _parser().parse_args(command).command == "up"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not any(package in ignored for package in packages)


def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    """HAProxy's own check; the compose service names (resolved by the container network) stand
    for loopback here."""
    from tests.support.haproxy import check_config

    text = (DEPLOY / "haproxy.cfg").read_text()
    for name in _switchboard_services(_compose()):
        text = text.replace(f" {name}:", " 127.0.0.1:")
    copy = tmp_path / "haproxy.cfg"
    copy.write_text(text)
    checked = check_config(copy)
    assert checked.returncode == 0, checked.stdout + checked.stderr
