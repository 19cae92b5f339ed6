"""Pod Security levels and policy versions, parsed as ``k8s.io/pod-security-admission/api`` does.

A version is ``latest`` or ``v1.N`` (``^v1\\.([0-9]|[1-9][0-9]*)$``, no leading zeros). A version
newer than the newest check revision evaluates as that newest revision (upstream clamps to the
registry's ``maxVersion``), and ``latest`` means the same: v1.37 for this catalog.
"""

from __future__ import annotations

import re
from typing import Literal

Level = Literal["privileged", "baseline", "restricted"]
LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")

LATEST = "latest"
_VERSION = re.compile(r"v1\.([0-9]|[1-9][0-9]*)")


class VersionError(ValueError):
    """A policy version that is neither ``latest`` nor ``v1.N``."""


def parse_version(version: str) -> int | None:
    """The minor of ``v1.N``, or ``None`` for ``latest``; raises :class:`VersionError` otherwise."""
    if version == LATEST:
        return None
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise VersionError(
            'version must be "latest" or "v1.N" (a minor without leading zeros, e.g. "v1.30"); '
            f"got {version!r}"
        )
    return int(match.group(1))


def check_level(level: str) -> Level:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
    return level  # type: ignore[return-value,unused-ignore]


def label(level: str, version: str) -> str:
    """``restricted:latest`` / ``baseline:v1.30`` -- upstream ``LevelVersion.String()``."""
    return f"{level}:{version}"
