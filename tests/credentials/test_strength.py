"""Which configured secrets are too weak to guard a cluster, and the exact reason given."""

from __future__ import annotations

import pytest

from credentials import MIN_KEY_LENGTH, weak_key_reason

#: 32 characters, 16 distinct: the shortest key that passes.
SHORTEST_STRONG = "aB3dE5gH7jK9mN1p" * 2


def test_the_shortest_accepted_key_has_exactly_min_key_length_characters() -> None:
    assert MIN_KEY_LENGTH == 32 and len(SHORTEST_STRONG) == 32
    assert weak_key_reason(SHORTEST_STRONG) is None
    assert weak_key_reason(SHORTEST_STRONG[:31]) == "is shorter than 32 characters"
    assert weak_key_reason("") == "is shorter than 32 characters"


@pytest.mark.parametrize("key", [
    "switchboard-development-key-change-me",
    "Change-Me-To-A-Long-Random-Secret-String",
    "q8Zr2xLw5Tn9Vb3Kd7Hs1Jf4example0Pm6",
    "q8Zr2xLw5Tn9Vb3Kd7Hs1Jf4REPLACE-ME0Pm6",
    "changeme-q8Zr2xLw5Tn9Vb3Kd7Hs1Jf4Pm6",
])
def test_known_examples_and_keys_holding_an_example_word_are_refused(key: str) -> None:
    assert weak_key_reason(key) == "is a known example key"


def test_a_key_needs_ten_distinct_characters() -> None:
    ten = "0123456789" * 4
    assert weak_key_reason(ten) is None
    assert weak_key_reason("012345678" * 4) == "has fewer than 10 distinct characters"
    assert weak_key_reason("a" * 40) == "has fewer than 10 distinct characters"
