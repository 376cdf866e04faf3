"""The one definition of a safe id or name: patterns, the first unsafe character, escapes, messages."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
import pytest

from credentials import SafeText, UnsafeText, check_safe, escape_unsafe, first_unsafe, readable_validation, safe_pattern


def _matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def test_the_safe_pattern_wants_at_least_one_character_unless_empty_is_allowed() -> None:
    assert [_matches(safe_pattern(), text) for text in ("", "a", "Zoë", "Xavier", "a\n", "a\u202eb")] == [
        False, True, True, True, False, False]
    assert [_matches(safe_pattern(allow_empty=True), text) for text in ("", "a", "\x00")] == [True, True, False]


def test_the_safe_pattern_also_refuses_the_extra_characters_it_is_given() -> None:
    pattern = safe_pattern("/")
    assert [_matches(pattern, text) for text in ("room-1", "a/b", "/", "a\tb")] == [True, False, False, False]


def test_the_first_unsafe_character_is_named_by_its_code_point() -> None:
    assert first_unsafe("alice") is None and first_unsafe("") is None
    assert first_unsafe("a\x85b\x00") == "U+0085"
    assert first_unsafe("x\u2066") == "U+2066"


def test_an_unsafe_name_is_refused_with_the_field_and_the_character() -> None:
    check_safe("Zoë Ångström", "user")
    with pytest.raises(UnsafeText) as refused:
        check_safe("al\nice", "user")
    assert str(refused.value) == "user must not contain control or invisible characters (found U+000A)"
    assert isinstance(refused.value, ValueError)


def test_escapes_use_two_hex_digits_below_256_and_four_above() -> None:
    assert escape_unsafe("\x00\x7f\x9f\u00ad") == "\\x00\\x7f\\x9f\\xad"
    assert escape_unsafe("a\u061cb\u2028c\ufeff") == "a\\u061cb\\u2028c\\ufeff"
    assert escape_unsafe("") == "" and escape_unsafe("\u00a0é") == "\u00a0é"


class _Named(msgspec.Struct):
    name: SafeText
    count: int = 0
    code: Annotated[str, msgspec.Meta(pattern="^[a-z]+$")] = "a"


def _validation_message(fields: dict[str, object]) -> str:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(fields, _Named)
    return str(refused.value)


def test_a_refused_safe_text_is_explained_in_words_and_other_messages_are_kept() -> None:
    assert readable_validation(_validation_message({"name": "a\n"})) == (
        "Expected `str` without control or invisible characters - at `$.name`")
    kept = [_validation_message({"name": "a", "count": "x"}), _validation_message({"name": "a", "code": "A"})]
    assert [readable_validation(message) for message in kept] == kept
    assert kept[1] == "Expected `str` matching regex '^[a-z]+$' - at `$.code`"
