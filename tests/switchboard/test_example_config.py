"""``examples/switchboard.toml`` loads with the real configuration loader and shows every section
(and sub-section) of the settings, each key it sets taking effect."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import msgspec

from switchboard.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "switchboard.toml"


def _sections(value: msgspec.Struct, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for field in msgspec.structs.fields(type(value)):
        inner = getattr(value, field.name)
        if isinstance(inner, msgspec.Struct):
            name = f"{prefix}{field.name}"
            found |= {name} | _sections(inner, name + ".")
    return found


def _tables(data: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict) and not (prefix == "token_api." and key == "service_keys"):
            found |= {prefix + key} | _tables(value, f"{prefix}{key}.")
    return found


def _leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) and (*prefix, key) != ("token_api", "service_keys"):
            out += _leaves(value, (*prefix, key))
        else:
            out.append(((*prefix, key), value))
    return out


def test_the_example_has_every_section_and_loads() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert _tables(data) == _sections(Settings())
    settings = load_settings(str(EXAMPLE), env={})
    loaded: Any = msgspec.to_builtins(settings)
    for path, value in _leaves(data):
        found = loaded
        for part in path:
            found = found[part]
        assert found == value, path
