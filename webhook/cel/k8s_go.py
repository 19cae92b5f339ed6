"""The few Go standard-library behaviours the Kubernetes CEL types show their users.

Error texts of ``quantity()``, ``url()``, ``ip()``, ``cidr()`` and ``semver()`` embed strings the
way Go's ``strconv.Quote`` writes them, and parse numbers the way ``strconv.ParseInt`` does (a
leading sign, ASCII digits only, no underscores). Kept in one place so every type words them alike.
"""

from __future__ import annotations

import re
import unicodedata

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_SIGNED = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            '"': '\\"', "\\": "\\\\"}
_PRINTABLE_CATEGORIES = ("L", "M", "N", "P", "S")


class NumError(ValueError):
    """``strconv.ParseInt``'s ``*NumError``: ``strconv.ParseInt: parsing "x": invalid syntax``."""


def quote(text: str | bytes) -> str:
    """``strconv.Quote``: double quotes; Go escapes for control characters, for characters
    ``unicode.IsPrint`` rejects and for bytes that are not UTF-8; printable Unicode as is."""
    decoded = text.decode("utf-8", errors="surrogateescape") if isinstance(text, bytes) else text
    out = ['"']
    for char in decoded:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x7F or _printable(char):
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _printable(char: str) -> bool:
    # unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space only.
    return unicodedata.category(char)[0] in _PRINTABLE_CATEGORIES


def parse_int(text: str, *, function: str = "ParseInt", low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """``strconv.ParseInt(text, 10, 64)`` (or ``ParseUint`` with ``low=0``), with its error texts."""
    pattern = _UNSIGNED if low == 0 else _SIGNED
    if not pattern.fullmatch(text):
        raise NumError(f"strconv.{function}: parsing {quote(text)}: invalid syntax")
    value = int(text)
    if not low <= value <= high:
        raise NumError(f"strconv.{function}: parsing {quote(text)}: value out of range")
    return value


def parse_uint(text: str) -> int:
    """``strconv.ParseUint(text, 10, 64)``."""
    return parse_int(text, function="ParseUint", low=0, high=UINT64_MAX)


def int64(value: int) -> int:
    """A Go conversion to ``int64`` (``types.Int(v)`` of a ``uint64``): wraps around."""
    return (value + 2**63) % 2**64 - 2**63


def int32(value: int) -> int:
    """A Go conversion to ``int32``: wraps around."""
    return (value + 2**31) % 2**32 - 2**31
