"""``library.Quantity`` (``k8s.io/apiserver/pkg/cel/library/quantity.go``): ``quantity()``,
``isQuantity()``, comparisons, ``add``/``sub``, ``sign``, ``isInteger``/``asInteger``,
``asApproximateFloat``.

Parsing follows ``resource.ParseQuantity`` (``k8s.io/apimachinery/pkg/api/resource/quantity.go``)
step by step, because CEL users see its quirks and its three error texts:

* the scanner (``parseQuantityString``) checks the shape, so ``quantity('10Mo')`` fails with
  ``quantities must match the regular expression '...'``; ``'-'``, ``'.'`` and ``'Mi'`` are zero,
  as they are for the API server (the function comment's ``quantity('Mi') // error`` is wrong);
* the suffix table (``suffixHandler.interpret``) rejects ``10Mm`` with ``unable to parse quantity's
  suffix``; an exponent is parsed as int64 and truncated to int32 (``1e4294967296`` is 1);
* values finer than 1n are rounded away from zero to 1n; binary-suffixed values that leave the fast
  path are capped at 2^63-1.

:mod:`webhook.quantity` is the project's parser for policy code, but the import-linter layers keep
``webhook.cel`` from importing it (same floor), and it words its errors for manifests, not as the
API server's CEL functions; this module is the CEL-facing twin.

A value is ``(mantissa, exponent)``: ``mantissa * 10**exponent`` without trailing zeros in the
mantissa, the canonical state :mod:`webhook.cel.k8s_types` stores, so ``==`` compares values as
upstream's ``Quantity.Equal`` (``Cmp == 0``) does.

Known difference. Go's ``AsInt64`` (behind ``isInteger``/``asInteger``) also depends on how the
quantity was written: ``quantity('1000m').isInteger()`` and ``quantity('1.5Gi').asInteger()`` fail
in the API server although the values are integers; here they succeed. Keeping the written form in
the value would make ``quantity('1') == quantity('1000m')`` false (cel-cpp compares messages field by
field), which is the more common check. ``asApproximateFloat`` is the correctly rounded value where
Go multiplies by ``math.Pow10`` (the two can differ in the last bit, e.g. ``0.3``).

Two guards the API server does not have keep hostile input cheap: at most 1000 significant digits
in a quantity and 10000 in an ``add``/``sub`` result.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from typing import Any

from webhook.cel import k8s_go, k8s_types

_SPLIT = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_WRONG = "quantities must match the regular expression '" + _SPLIT + "'"
NUMERIC = "unable to parse numeric part of quantity"
SUFFIX = "unable to parse quantity's suffix"
NOT_INTEGER = "cannot convert value to integer"

_DIGITS = frozenset("0123456789")
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DECIMAL_SUFFIXES = {"": 0, "n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_MAX_INT64_FACTORS = 18
_NANO = -9
_MAX_DIGITS = 1000
_MAX_RESULT_DIGITS = 10000
_DEC = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")

Value = tuple[int, int]
"""``(mantissa, exponent)``: the exact value ``mantissa * 10**exponent``, normalized."""


def _scan(text: str) -> tuple[str, str, str, str]:
    """``parseQuantityString``: (value, numerator, denominator, suffix); raises the format error."""
    end = len(text)
    pos = 1 if text[:1] in ("-", "+") else 0
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return "0", "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos >= end:
        return text, text[start:], "", ""
    num = text[start:pos] or "0"
    denom = ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
        if pos >= end:
            return text, num, denom, ""
    value = text[:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in ("-", "+"):
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        # A character the suffix grammar does not allow (upstream: "the last character was not a
        # valid exponent").
        raise ValueError(FORMAT_WRONG)
    return value, num, denom, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int]:
    """``suffixHandler.interpret``: (base, exponent); raises the suffix error."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix]
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix]
    if len(suffix) > 1 and suffix[0] in ("e", "E"):
        try:
            parsed = k8s_go.parse_int(suffix[1:])
        except k8s_go.NumError:
            raise ValueError(SUFFIX) from None
        return 10, k8s_go.int32(parsed)  # Go: int32(parsed)
    raise ValueError(SUFFIX)


def parse(text: str) -> Value:
    """``resource.ParseQuantity(text)``'s value, or ``ValueError`` with its error text."""
    if text == "":
        raise ValueError(FORMAT_WRONG)
    if text == "0":
        return 0, 0
    value, num, denom, suffix = _scan(text)
    base, exponent = _interpret(suffix)
    if len(num) + len(denom) > _MAX_DIGITS:
        raise ValueError(f"quantity {k8s_go.quote(text[:40] + '...')} has more than {_MAX_DIGITS} digits, "
                         "which this webhook does not evaluate")
    negative = text.startswith("-")
    # The API server's int64 fast path: exact, no rounding needed (the scale is at least nano).
    if base == 10:
        precision, scale, mantissa = _MAX_INT64_FACTORS - len(num) - len(denom), exponent, 1
    elif not denom:
        precision, scale, mantissa = 15 - len(num) - (exponent * 3) // 10 - 1, 0, 1 << exponent
    else:
        precision, scale, mantissa = -1, 0, 1
    if precision >= 0 and scale - len(denom) >= _NANO:
        result = int(num + denom) * mantissa
        if result <= k8s_go.INT64_MAX:
            return normalize(-result if negative else result, scale - len(denom))
    return _slow_path(value, base, exponent)


def _slow_path(value: str, base: int, exponent: int) -> Value:
    """The ``inf.Dec`` path: any size, rounded up to 1n, binary values capped at 2^63-1."""
    match = _DEC.fullmatch(value)
    if match is None or not (match.group(2) or match.group(3)):
        raise ValueError(NUMERIC)  # inf.Dec.SetString: no digits read
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    unscaled = int(whole + fraction or "0")
    if base == 10:
        magnitude = normalize(unscaled, exponent - len(fraction))
    else:
        magnitude = normalize(unscaled << exponent, -len(fraction))
    magnitude = _round_up_to_nano(magnitude)
    if base == 2 and compare(magnitude, (k8s_go.INT64_MAX, 0)) > 0:
        magnitude = (k8s_go.INT64_MAX, 0)
    return (-magnitude[0], magnitude[1]) if sign == "-" else magnitude


def _round_up_to_nano(value: Value) -> Value:
    mantissa, exponent = value
    if mantissa == 0 or exponent >= _NANO:
        return value
    digits = len(str(abs(mantissa)))
    if digits + exponent < _NANO:
        return normalize(1 if mantissa > 0 else -1, _NANO)  # below 1n whatever the digits: 1n
    units, rest = divmod(abs(mantissa), 10 ** (_NANO - exponent))
    units += 1 if rest else 0
    return normalize(units if mantissa > 0 else -units, _NANO)


def normalize(mantissa: int, exponent: int) -> Value:
    """``(mantissa, exponent)`` with the trailing zeros of the mantissa moved to the exponent."""
    if mantissa == 0:
        return 0, 0
    digits = str(abs(mantissa))
    stripped = digits.rstrip("0")
    if len(stripped) == len(digits):
        return mantissa, exponent
    shift = len(digits) - len(stripped)
    return (int(stripped) if mantissa > 0 else -int(stripped)), exponent + shift


def _magnitude(value: Value) -> int:
    """The power of ten just above ``|value|`` (the number of integer digits, may be negative)."""
    return len(str(abs(value[0]))) + value[1]


def sign(value: Value) -> int:
    return (value[0] > 0) - (value[0] < 0)


def compare(left: Value, right: Value) -> int:
    """``Quantity.Cmp``: -1, 0 or 1, without expanding far-apart exponents."""
    left_sign, right_sign = sign(left), sign(right)
    if left_sign != right_sign:
        return -1 if left_sign < right_sign else 1
    if left_sign == 0:
        return 0
    left_size, right_size = _magnitude(left), _magnitude(right)
    if left_size != right_size:
        result = -1 if left_size < right_size else 1
    else:
        exponent = min(left[1], right[1])
        a, b = abs(left[0]) * 10 ** (left[1] - exponent), abs(right[0]) * 10 ** (right[1] - exponent)
        result = (a > b) - (a < b)
    return result * left_sign


def add(left: Value, right: Value) -> Value:
    """``Quantity.Add``; the exact sum."""
    if left[0] == 0:
        return right
    if right[0] == 0:
        return left
    exponent = min(left[1], right[1])
    if max(_magnitude(left), _magnitude(right)) - exponent > _MAX_RESULT_DIGITS:
        raise ValueError(f"the result has more than {_MAX_RESULT_DIGITS} digits, which this webhook does not evaluate")
    return normalize(left[0] * 10 ** (left[1] - exponent) + right[0] * 10 ** (right[1] - exponent), exponent)


def negate(value: Value) -> Value:
    return -value[0], value[1]


def as_integer(value: Value) -> int | None:
    """The value as an int64, or ``None`` when it is fractional or out of range."""
    mantissa, exponent = value
    if exponent < 0:
        return None  # normalized: a negative exponent means a fractional part
    if len(str(abs(mantissa))) + exponent > 19:
        return None
    result = mantissa * 10**exponent
    return result if k8s_go.INT64_MIN <= result <= k8s_go.INT64_MAX else None


def as_float(value: Value) -> float:
    """The value as the nearest float64; +Inf/-Inf beyond its range (``AsApproximateFloat64``)."""
    mantissa, exponent = value
    if mantissa == 0:
        return 0.0
    size = _magnitude(value)
    if size > 310:
        return float("inf") if mantissa > 0 else float("-inf")
    if size < -330:
        return 0.0 if mantissa > 0 else -0.0
    return float(Fraction(mantissa) * Fraction(10) ** exponent)


# -- CEL functions: messages in, messages out ----------------------------------------------------


def to_message(value: Value) -> Any:
    return k8s_types.new(k8s_types.QUANTITY, mantissa=str(value[0]), exponent=value[1])


def from_message(message: Any) -> Value:
    try:
        mantissa = int(message.mantissa or "0")
    except ValueError:
        raise ValueError("no such overload") from None  # a hand-built kubernetes.Quantity{...}
    return mantissa, int(message.exponent)


@functools.lru_cache(maxsize=4096)
def quantity(text: str) -> Any:
    """``quantity(string)``; literals repeat on every evaluation, hence the cache (the message is
    only read by cel-cpp, never changed)."""
    return to_message(parse(text))


def is_quantity(text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def is_integer(message: Any) -> bool:
    return as_integer(from_message(message)) is not None


def get_integer(message: Any) -> int:
    found = as_integer(from_message(message))
    if found is None:
        raise ValueError(NOT_INTEGER)
    return found


def approximate_float(message: Any) -> float:
    return as_float(from_message(message))


def get_sign(message: Any) -> int:
    return sign(from_message(message))


def compare_messages(left: Any, right: Any) -> int:
    return compare(from_message(left), from_message(right))


def add_quantity(left: Any, right: Any) -> Any:
    return to_message(add(from_message(left), from_message(right)))


def sub_quantity(left: Any, right: Any) -> Any:
    return to_message(add(from_message(left), negate(from_message(right))))


def add_int(left: Any, right: int) -> Any:
    return to_message(add(from_message(left), normalize(right, 0)))


def sub_int(left: Any, right: int) -> Any:
    return to_message(add(from_message(left), normalize(-right, 0)))
