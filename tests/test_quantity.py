"""Kubernetes quantities are parsed exactly, as the API server stores them, and invalid ones are named."""

from __future__ import annotations

from fractions import Fraction

import pytest

from webhook import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", 1073741824),
        ("1G", 10**9),
        ("500m", Fraction(1, 2)),
        ("1e3", 1000),
        ("1E-2", Fraction(1, 100)),
        ("1E+2", 100),
        ("1.5Gi", 1610612736),
        ("0.5Ti", 512 * 2**30),
        ("1Ki", 1024),
        ("1Mi", 2**20),
        ("1Pi", 2**50),
        ("1Ei", 2**60),
        ("1k", 1000),
        ("1M", 10**6),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),  # a lone E is exa, not an exponent
        ("2n", Fraction(2, 10**9)),
        ("3u", Fraction(3, 10**6)),
        ("0", 0),
        ("000", 0),
        ("-0", 0),
        ("+1", 1),
        ("-1.5", Fraction(-3, 2)),
        ("1.", 1),  # the API server accepts a trailing point ("1.G" too)
        ("1.G", 10**9),
        (".5", Fraction(1, 2)),
        ("0001.500", Fraction(3, 2)),
        ("12345678901234567890123", 12345678901234567890123),  # decimal values are not capped
    ],
)
def test_valid_quantities_parse_exactly(text: str, value: Fraction | int) -> None:
    assert quantity.parse(text) == value


def test_binary_and_decimal_forms_of_the_same_size_are_equal() -> None:
    assert quantity.parse("0.5Ti") == quantity.parse("512Gi")
    assert quantity.parse("1Ti") == quantity.parse("1024Gi")
    assert quantity.parse("1.1T") > quantity.parse("1Ti") > quantity.parse("1T")
    assert quantity.parse("1e3") == quantity.parse("1k")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # The API server rounds non-zero values up (away from zero) to a multiple of 1n.
        ("0.1n", Fraction(1, 10**9)),
        ("1.5n", Fraction(2, 10**9)),
        ("-0.1n", Fraction(-1, 10**9)),
        ("1e-20", Fraction(1, 10**9)),
        ("1e-999999", Fraction(1, 10**9)),
        # Binary-suffixed values are capped at 2^63-1.
        ("8Ei", 2**63 - 1),
        ("-16Ei", -(2**63 - 1)),
    ],
)
def test_rounding_and_capping_follow_the_api_server(text: str, value: Fraction | int) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.5.2", 'invalid quantity "1.5.2": more than one decimal point'),
        ("Gib", 'invalid quantity "Gib": must start with a number (an optional sign, digits, an optional '
                "decimal point)"),
        ("", 'invalid quantity "": empty string; write a number with an optional suffix such as "1Gi" or '
             '"500m"'),
        (" 1Gi", 'invalid quantity " 1Gi": leading or trailing whitespace is not allowed'),
        ("1Gi\n", 'invalid quantity "1Gi\\n": leading or trailing whitespace is not allowed'),
        ("1Gib", 'invalid quantity "1Gib": unknown suffix "Gib"; use one of Ki Mi Gi Ti Pi Ei (powers of '
                 "1024), n u m k M G T P E (powers of 1000) or an exponent such as e3"),
        ("1K", 'invalid quantity "1K": unknown suffix "K"; use one of Ki Mi Gi Ti Pi Ei (powers of 1024), n '
               "u m k M G T P E (powers of 1000) or an exponent such as e3"),
        ("1e", 'invalid quantity "1e": unknown suffix "e"; use one of Ki Mi Gi Ti Pi Ei (powers of 1024), n '
               "u m k M G T P E (powers of 1000) or an exponent such as e3"),
        ("1e1.5", 'invalid quantity "1e1.5": exponent "1.5" must be an integer such as e3 or E-2'),
        ("-", 'invalid quantity "-": must start with a number (an optional sign, digits, an optional '
              "decimal point)"),
        (".", 'invalid quantity ".": must start with a number (an optional sign, digits, an optional '
              "decimal point)"),
        ("١", 'invalid quantity "١": must start with a number (an optional sign, digits, an optional '
              "decimal point)"),
        ("1e1234567", 'invalid quantity "1e1234567": exponent 1234567 is out of range'),
        ("1e65", 'invalid quantity "1e65": larger than 10^64'),
        ("1" * 1001, f'invalid quantity "{"1" * 1001}": more than 1000 significant digits'),
    ],
)
def test_invalid_quantities_raise_a_value_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        quantity.parse(text)
    assert str(caught.value) == message


def test_a_non_string_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        quantity.parse(5)  # type: ignore[arg-type]
    assert not quantity.is_valid(None)
    assert quantity.is_valid("1Gi")


@pytest.mark.parametrize(
    ("value", "binary", "text"),
    [
        (2**40, None, "1Ti"),
        (10**18, None, "1E"),  # shorter than 976562500000000Ki
        (1024, None, "1Ki"),
        (1000, None, "1k"),
        (1500, None, "1500"),  # as Quantity.String: the mantissa must be an integer
        (Fraction(3, 2), None, "1500m"),
        (Fraction(1, 2), None, "500m"),
        (3 * 2**29, None, "1536Mi"),
        (-(2**30), None, "-1Gi"),
        (1023, True, "1023"),  # below 1Ki binary form is not used
        (2**30, False, "1073741824"),
        (2048000, True, "2000Ki"),
        (0, None, "0"),
        (Fraction(1, 3), None, "333333334n"),  # rounded up to 1n like a parsed value
    ],
)
def test_format_gives_the_canonical_form(value: Fraction | int, binary: bool | None, text: str) -> None:
    assert quantity.format(value, binary=binary) == text


@pytest.mark.parametrize("text", ["1Gi", "1536Mi", "500m", "1E", "7", "123456789n", "-2Ki"])
def test_format_round_trips(text: str) -> None:
    assert quantity.parse(quantity.format(quantity.parse(text))) == quantity.parse(text)
