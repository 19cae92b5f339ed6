"""The few Go standard-library behaviours the Kubernetes CEL types show their users.

Error texts of ``quantity()``, ``url()``, ``ip()``, ``cidr()`` and ``semver()`` embed strings the
way Go's ``strconv.Quote`` writes them, and parse numbers the way ``strconv.ParseInt`` does (a
leading sign, ASCII digits only, no underscores). Kept in one place so every type words them
alike; ``quote`` is :func:`webhook.gotext.quote`, re-exported for them.
"""

from __future__ import annotations

import re

from webhook.gotext import quote

__all__ = ["INT64_MAX", "INT64_MIN", "UINT64_MAX", "NumError", "parse_int", "parse_uint", "quote"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_SIGNED = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")


class NumError(ValueError):
    """``strconv.ParseInt``'s ``*NumError``: ``strconv.ParseInt: parsing "x": invalid syntax``."""


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
