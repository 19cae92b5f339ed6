"""Exact parsing and formatting of Kubernetes ``resource.Quantity`` strings (``1Gi``, ``500m``, ``1e3``).

Policies compare sizes (a claim's ``requests.storage`` against a configured maximum), so they need the
value the API server stores, exactly: floats would call ``0.1Gi`` and ``107374182.4`` different or
equal by accident. We follow ``k8s.io/apimachinery/pkg/api/resource``:

* the grammar is the one documented on ``Quantity`` (and used as the OpenAPI pattern)::

    <quantity> ::= <sign>? <number> <suffix>?
    <number>   ::= <digits> | <digits>.<digits>? | .<digits>
    <suffix>   ::= Ki | Mi | Gi | Ti | Pi | Ei | n | u | m | k | M | G | T | P | E | (e|E) <sign>? <digits>

  with ASCII digits only, no whitespace, and an integer exponent (``ParseQuantity`` rejects
  ``1e1.5`` even though the OpenAPI pattern lets it through). ``E`` alone is exa; ``e`` alone is
  an error, as in ``suffixHandler.interpret``;
* non-zero values are rounded *up* (away from zero) to a multiple of 1n, "so that if you want some
  resources, you get some";
* binary-suffixed values are capped at 2^63-1 (the API server caps only that format).

Two guards the API server does not need (it uses arbitrary-precision decimals) keep parsing cheap
on hostile input: at most 1000 significant digits and a magnitude below 10^64.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

BINARY_SUFFIXES: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
"""Suffix -> power of two."""
DECIMAL_SUFFIXES: dict[str, int] = {
    "n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}
"""Suffix -> power of ten."""

_NANO = Fraction(1, 10**9)
_BINARY_CAP = 2**63 - 1
_MAX_DIGITS = 1000
_MAX_MAGNITUDE = 64
"""Largest accepted power of ten: far beyond any resource, small enough to compute exactly."""

# [0-9], never \d: Python's \d matches non-ASCII digits that Go's parser rejects.
_QUANTITY = re.compile(
    r"(?P<sign>[+-])?"
    r"(?:(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]*))?|\.(?P<frac_only>[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE](?P<exp>[+-]?[0-9]+))?"
)
_NUMBER_PREFIX = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse(text: str) -> Fraction:
    """The exact value of a quantity string, as the API server would store it.

    Raises ``ValueError`` naming the string and what is wrong with it (``invalid quantity
    "1.5.2": more than one decimal point``).
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid quantity {text!r}: must be a string such as \"1Gi\" or \"500m\"")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid quantity {_quote(text)}: {_diagnose(text)}")
    integer = (match["int"] or "").lstrip("0")
    fraction = (match["frac"] if match["frac"] is not None else match["frac_only"] or "").rstrip("0")
    digits = (integer + fraction).lstrip("0")
    if not digits:
        return Fraction(0)
    if len(digits) > _MAX_DIGITS:
        raise ValueError(f"invalid quantity {_quote(text)}: more than {_MAX_DIGITS} significant digits")
    mantissa = int(digits)
    # value = mantissa * 10**ten_power * 2**two_power
    ten_power = -len(fraction)
    two_power = 0
    suffix = match["suffix"] or ""
    if match["exp"] is not None:
        exponent_text = match["exp"].lstrip("+-").lstrip("0") or "0"
        if len(exponent_text) > 6:
            raise ValueError(f"invalid quantity {_quote(text)}: exponent {match['exp']} is out of range")
        ten_power += int(match["exp"])
    elif suffix in BINARY_SUFFIXES:
        two_power = BINARY_SUFFIXES[suffix]
    else:
        ten_power += DECIMAL_SUFFIXES[suffix]
    if len(digits) + ten_power > _MAX_MAGNITUDE:
        raise ValueError(f"invalid quantity {_quote(text)}: larger than 10^{_MAX_MAGNITUDE}")
    if not two_power and len(digits) + ten_power < -9:
        # Below 1n whatever the digits are: the API server rounds it up to 1n.
        magnitude = _NANO
    else:
        magnitude = Fraction(mantissa) * Fraction(10) ** ten_power * 2**two_power
        magnitude = _round_up_to_nano(magnitude)
        if two_power and magnitude > _BINARY_CAP:
            magnitude = Fraction(_BINARY_CAP)
    return -magnitude if match["sign"] == "-" else magnitude


MAX_LENIENT_LENGTH = 64
"""Longer quantity values are treated as unreadable by :func:`lenient`. Real ones are a dozen
characters; the bound keeps a hostile value (thousands of digits) from costing anything."""


def lenient(value: object) -> Fraction | None:
    """A quantity field as an object holds it (``"500m"``, ``"1Gi"``, or a bare YAML/JSON number,
    which Kubernetes accepts too) as an exact number, or ``None`` when it is absent or unreadable.

    Surrounding whitespace, which the API server's JSON decoding trims, is trimmed here as well.
    For policies that read quantities from objects: the API server rejects an unreadable one
    anyway, so a check or a default must neither guess nor raise.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value)
    if len(text) > MAX_LENIENT_LENGTH:
        return None
    try:
        return parse(text.strip())
    except ValueError:
        return None


def is_valid(text: object) -> bool:
    """Whether ``text`` parses (a convenience for validators that only need a yes/no)."""
    try:
        parse(text)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def format(value: Fraction | int, *, binary: bool | None = None) -> str:
    """A value in Kubernetes canonical form, for messages: ``1Ti``, ``1536Mi``, ``500m``, ``1500``.

    As ``Quantity.String``: the suffix is as large as possible with an integer mantissa. Binary
    form (``binary=True``) applies only to integers of at least 1024 in magnitude, as
    ``CanonicalizeBytes`` does; ``binary=None`` picks whichever form is shorter (``1Ti`` but
    ``1E``, decimal on a tie). Values finer than 1n are rounded up to 1n first, as parsing would.
    """
    value = _round_up_to_nano(Fraction(value))
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    decimal = sign + _decimal(abs(value))
    if binary is False:
        return decimal
    in_binary = _binary(abs(value))
    if in_binary is None:
        return decimal
    in_binary = sign + in_binary
    if binary is None and len(decimal) <= len(in_binary):
        return decimal
    return in_binary


def _decimal(magnitude: Fraction) -> str:
    for suffix, power in sorted(DECIMAL_SUFFIXES.items(), key=lambda item: -item[1]):
        scaled = magnitude / Fraction(10) ** power
        if scaled.denominator == 1:
            return f"{scaled.numerator}{suffix}"
    raise AssertionError("unreachable: a multiple of 1n always has an integer count of n")


def _binary(magnitude: Fraction) -> str | None:
    if magnitude.denominator != 1 or magnitude < 1024:
        return None
    for suffix, power in sorted(BINARY_SUFFIXES.items(), key=lambda item: -item[1]):
        if magnitude.numerator % (2**power) == 0:
            return f"{magnitude.numerator >> power}{suffix}"
    return None


def _round_up_to_nano(value: Fraction) -> Fraction:
    """Round away from zero to a multiple of 1n (``inf.RoundUp`` at scale 9)."""
    if (value / _NANO).denominator == 1:
        return value
    units = -((-abs(value)) // _NANO)  # ceiling of |value| in nano units
    rounded = Fraction(units) * _NANO
    return rounded if value > 0 else -rounded


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _diagnose(text: str) -> str:
    """Why ``text`` is not a quantity, worded for someone fixing a manifest."""
    if text == "":
        return "empty string; write a number with an optional suffix such as \"1Gi\" or \"500m\""
    if text != text.strip():
        return "leading or trailing whitespace is not allowed"
    number = _NUMBER_PREFIX.match(text)
    if number is None:
        return "must start with a number (an optional sign, digits, an optional decimal point)"
    rest = text[number.end() :]
    if rest.startswith("."):
        return "more than one decimal point"
    if rest[:1] in ("e", "E") and len(rest) > 1:
        return f"exponent {_quote(rest[1:])} must be an integer such as e3 or E-2"
    return (
        f"unknown suffix {_quote(rest)}; use one of Ki Mi Gi Ti Pi Ei (powers of 1024), "
        "n u m k M G T P E (powers of 1000) or an exponent such as e3"
    )
