"""What a safe id or name is: the one definition the token API, the portals and the logs share.

Ids and names travel to other participants, into logs and onto screens, so none may hold a character
that changes how the text around it reads: C0 and C1 control characters and DEL (NUL, LF, ESC, …),
bidirectional controls (LRM, RLM, ALM, the embeddings and overrides U+202A–U+202E, the isolates
U+2066–U+2069), line and paragraph separators (U+2028, U+2029), invisible characters that make two
names look alike (zero-width space, word joiner, soft hyphen, BOM, invisible operators, the
deprecated format characters U+206A–U+206F, interlinear annotations) and lone surrogates (they are
not text and cannot be encoded).  Zero-width (non-)joiners stay allowed: scripts such as Persian
and emoji sequences need them.

Schemas use :data:`SafeText` (or :func:`safe_pattern` for a stricter id); code that checks by hand
uses :func:`check_safe`; log formatters print with :func:`escape_unsafe`.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

__all__ = ["UNSAFE_CHARACTERS", "SafeText", "UnsafeText", "safe_pattern", "first_unsafe", "check_safe",
           "escape_unsafe", "readable_validation"]

# Written as escapes so that error messages quoting the pattern stay readable.
_UNSAFE_CLASS = (
    r"\x00-\x1f\x7f-\x9f"  # C0, DEL, C1
    r"\u00ad"  # soft hyphen
    r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    r"\u2028\u2029"  # line and paragraph separators
    r"\u200b\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb"  # invisible and format characters
    r"\ud800-\udfff"  # lone surrogates
)

#: Matches any one character no id or name may hold.
UNSAFE_CHARACTERS = re.compile(f"[{_UNSAFE_CLASS}]")


def safe_pattern(also_forbidden: str = "", *, allow_empty: bool = False) -> str:
    """A ``msgspec.Meta(pattern=…)`` for text without unsafe characters (nor ``also_forbidden``,
    characters as they would appear inside a regex class)."""
    # \A…\Z, not ^…$: "$" also matches before a final newline.
    return rf"\A[^{_UNSAFE_CLASS}{also_forbidden}]{'*' if allow_empty else '+'}\Z"


#: A non-empty string without unsafe characters.
SafeText = Annotated[str, msgspec.Meta(pattern=safe_pattern())]


class UnsafeText(ValueError):
    """An id or name holds an unsafe character; the message names the field and the character."""


def first_unsafe(text: str) -> str | None:
    """The first unsafe character of ``text`` as ``U+XXXX``, or ``None`` when there is none."""
    match = UNSAFE_CHARACTERS.search(text)
    return None if match is None else f"U+{ord(match.group()):04X}"


def check_safe(text: str, what: str) -> None:
    """:class:`UnsafeText` if ``text`` holds an unsafe character."""
    found = first_unsafe(text)
    if found is not None:
        raise UnsafeText(f"{what} must not contain control or invisible characters (found {found})")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_unsafe(text: str) -> str:
    """``text`` with every unsafe character written as ``\\xNN`` or ``\\uNNNN`` (for logs)."""
    return UNSAFE_CHARACTERS.sub(_escaped, text)


# msgspec quotes the whole pattern when a string does not match it; say what it means instead.
_QUOTED_SAFE_PATTERN = re.compile(r"matching regex '[^']*x00-[^']*'")


def readable_validation(message: str) -> str:
    """A ``msgspec.ValidationError`` message with a quoted :func:`safe_pattern` put in words."""
    return _QUOTED_SAFE_PATTERN.sub("without control or invisible characters", message)
