"""``library.SemverLib`` version 1 (``k8s.io/apiserver/pkg/cel/library/semverlib.go``):
``semver(s)``, ``semver(s, normalize)``, ``isSemver`` (both), ``major``/``minor``/``patch``,
``isGreaterThan``/``isLessThan``/``compareTo``.

Parsing is ``github.com/blang/semver/v4``'s ``Parse`` (strict: ``v1.0.0`` and ``1.0`` are errors,
``No Major.Minor.Patch elements found``) with its error texts; ``normalize`` is upstream's
``normalizeAndParse`` (drops a ``v``, pads ``1`` to ``1.0.0``, strips leading zeros). Comparison is
semver precedence, build metadata ignored, which is also what ``==`` compares (``Version.EQ``): the
message keeps major, minor, patch and the pre-release identifiers only.
"""

from __future__ import annotations

import functools
from typing import Any

from webhook.cel import k8s_go, k8s_types

_NUMBERS = frozenset("0123456789")
_ALPHANUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")

Version = tuple[int, int, int, tuple[str, ...]]


def _only(text: str, allowed: frozenset[str]) -> bool:
    return all(char in allowed for char in text)


def _leading_zero(text: str) -> bool:
    return len(text) > 1 and text[0] == "0"


def _number(text: str, what: str) -> int:
    if not _only(text, _NUMBERS):
        raise ValueError(f"Invalid character(s) found in {what} number {k8s_go.quote(text)}")
    if _leading_zero(text):
        raise ValueError(f"{what.capitalize()} number must not contain leading zeroes {k8s_go.quote(text)}")
    return k8s_go.parse_uint(text)


def parse(text: str) -> Version:
    """``semver.Parse``."""
    if text == "":
        raise ValueError("Version string empty")
    parts = text.split(".", 2)
    if len(parts) != 3:
        raise ValueError("No Major.Minor.Patch elements found")
    major, minor = _number(parts[0], "major"), _number(parts[1], "minor")
    patch_text, build, pre = parts[2], [], []
    if "+" in patch_text:
        patch_text, _, rest = patch_text.partition("+")
        build = rest.split(".")
    if "-" in patch_text:
        patch_text, _, rest = patch_text.partition("-")
        pre = rest.split(".")
    patch = _number(patch_text, "patch")
    for identifier in pre:
        if identifier == "":
            raise ValueError("Prerelease is empty")
        if _only(identifier, _NUMBERS):
            if _leading_zero(identifier):
                raise ValueError("Numeric PreRelease version must not contain leading zeroes "
                                 + k8s_go.quote(identifier))
            k8s_go.parse_uint(identifier)
        elif not _only(identifier, _ALPHANUM):
            raise ValueError(f"Invalid character(s) found in prerelease {k8s_go.quote(identifier)}")
    for identifier in build:
        if identifier == "":
            raise ValueError("Build meta data is empty")
        if not _only(identifier, _ALPHANUM):
            raise ValueError(f"Invalid character(s) found in build meta data {k8s_go.quote(identifier)}")
    return major, minor, patch, tuple(pre)


def normalize_and_parse(text: str) -> Version:
    """Upstream's ``normalizeAndParse`` (``semver.ParseTolerant`` without trimming spaces)."""
    text = text.removeprefix("v")
    parts = text.split(".", 2)
    for index, part in enumerate(parts):
        if len(part) > 1:
            part = part.lstrip("0")
            if part == "" or part[0] not in _NUMBERS:
                part = "0" + part
            parts[index] = part
    if len(parts) < 3:
        if "+" in parts[-1] or "-" in parts[-1]:
            raise ValueError("short version cannot contain PreRelease/Build meta data")
        parts += ["0"] * (3 - len(parts))
    return parse(".".join(parts))


def _pre_compare(left: str, right: str) -> int:
    left_number, right_number = _only(left, _NUMBERS), _only(right, _NUMBERS)
    if left_number and right_number:
        a, b = int(left), int(right)
    elif left_number or right_number:
        return -1 if left_number else 1  # numeric identifiers sort first
    else:
        a_text, b_text = left.encode(), right.encode()
        return (a_text > b_text) - (a_text < b_text)
    return (a > b) - (a < b)


def compare(left: Version, right: Version) -> int:
    """``Version.Compare``: precedence per semver 2.0.0."""
    if left[:3] != right[:3]:
        return -1 if left[:3] < right[:3] else 1
    pre_left, pre_right = left[3], right[3]
    if not pre_left or not pre_right:
        return (not pre_left) - (not pre_right)  # a release outranks its pre-releases
    for a, b in zip(pre_left, pre_right, strict=False):
        found = _pre_compare(a, b)
        if found:
            return found
    return (len(pre_left) > len(pre_right)) - (len(pre_left) < len(pre_right))


# -- CEL functions ---------------------------------------------------------------------------------


def to_message(version: Version) -> Any:
    return k8s_types.new(k8s_types.SEMVER, major=version[0], minor=version[1], patch=version[2], pre=list(version[3]))


def from_message(message: Any) -> Version:
    return int(message.major), int(message.minor), int(message.patch), tuple(message.pre)


@functools.lru_cache(maxsize=4096)
def semver(text: str, normalize: bool = False) -> Any:
    """``semver(string[, normalize])``, cached as :func:`webhook.cel.k8s_quantity.quantity` is."""
    return to_message(normalize_and_parse(text) if normalize else parse(text))


def is_semver(text: str, normalize: bool = False) -> bool:
    try:
        normalize_and_parse(text) if normalize else parse(text)
    except ValueError:
        return False
    return True


def major(message: Any) -> int:
    return k8s_go.int64(from_message(message)[0])  # types.Int(v.Major) of a uint64


def minor(message: Any) -> int:
    return k8s_go.int64(from_message(message)[1])


def patch(message: Any) -> int:
    return k8s_go.int64(from_message(message)[2])


def compare_messages(left: Any, right: Any) -> int:
    return compare(from_message(left), from_message(right))
