"""The signing keyring and the admin keys: what each accepts and refuses."""

from __future__ import annotations

import pytest

from credentials import AdminKeys, Keyring


@pytest.mark.parametrize("keys", [[], [""], ["good", ""], ["", "good"]])
def test_a_keyring_needs_at_least_one_key_and_no_empty_one(keys: list[str]) -> None:
    with pytest.raises(ValueError) as refused:
        Keyring(keys)
    assert str(refused.value) == "at least one non-empty signing key is required"


def test_admin_keys_without_a_non_empty_key_are_false_and_accept_nothing() -> None:
    for keys in ([], [""], ["", ""]):
        admin = AdminKeys(keys)
        assert not admin
        assert [admin.accepts(given) for given in ("", "k", " ")] == [False, False, False]
    assert AdminKeys(["k"]) and AdminKeys(["", "k"])


def test_admin_keys_accept_any_of_their_keys_and_nothing_else() -> None:
    admin = AdminKeys(["first-key", "", "second-key"])
    assert admin.accepts("first-key") is True
    assert admin.accepts("second-key") is True
    assert [admin.accepts(given) for given in ("first-ke", "first-key ", "FIRST-KEY", "third-key", "")] == [
        False, False, False, False, False]


@pytest.mark.parametrize("given", [None, 42, b"first-key", ["first-key"], object()])
def test_admin_keys_refuse_anything_but_a_string(given: object) -> None:
    assert AdminKeys(["first-key"]).accepts(given) is False


def test_admin_keys_refuse_text_that_cannot_be_encoded_without_raising() -> None:
    # a lone surrogate is not text: it is compared as its replacement ("?"), and never raises
    admin = AdminKeys(["key-x", "key-\u00e9"])
    assert admin.accepts("key-\ud800") is False
    assert admin.accepts("key-\u00e9") is True
