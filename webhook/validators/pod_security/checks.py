"""The versioned Pod Security checks and how a level/version picks its checks (upstream ``policy/registry.go``).

Every check id lists its revisions; for policy version v1.N a check uses its newest revision with
``since <= N`` and is absent before its first. ``restricted`` runs every restricted check plus every
baseline check not overridden by a restricted revision in force at that version. Checks run -- and
findings are reported -- baseline ids first, then restricted ids, each group sorted by id (Go string
order), so messages are stable. The catalog is validated at import, as upstream ``NewEvaluator``
validates its checks.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from webhook.validators.pod_security import (
    apparmor,
    base,
    capabilities,
    host_namespaces,
    host_ports,
    levels,
    privilege_escalation,
    privileged,
    probes,
    proc_mount,
    run_as,
    seccomp,
    selinux,
    sysctls,
    volumes,
    windows,
)

CHECKS: tuple[base.Check, ...] = (
    *privileged.CHECKS,
    *host_namespaces.CHECKS,
    *volumes.CHECKS,
    *capabilities.CHECKS,
    *host_ports.CHECKS,
    *apparmor.CHECKS,
    *selinux.CHECKS,
    *proc_mount.CHECKS,
    *seccomp.CHECKS,
    *sysctls.CHECKS,
    *windows.CHECKS,
    *probes.CHECKS,
    *run_as.CHECKS,
    *privilege_escalation.CHECKS,
)

def _validate(checks: tuple[base.Check, ...]) -> None:
    """Upstream ``validateChecks``: unique ids, strictly increasing revisions, overrides only from
    restricted onto baseline checks."""
    seen: dict[str, str] = {}
    for check in checks:
        if check.id in seen:
            raise ValueError(f"pod-security check {check.id!r} defined twice")
        seen[check.id] = check.level
        if not check.revisions:
            raise ValueError(f"pod-security check {check.id!r} has no revision")
        sinces = [revision.since for revision in check.revisions]
        if sinces != sorted(set(sinces)):
            raise ValueError(f"pod-security check {check.id!r}: revisions must be strictly increasing")
    for check in checks:
        for revision in check.revisions:
            if revision.overrides and check.level != "restricted":
                raise ValueError(f"pod-security check {check.id!r}: only restricted checks may override")
            for overridden in revision.overrides:
                if seen.get(overridden) != "baseline":
                    raise ValueError(f"pod-security check {check.id!r} overrides non-baseline {overridden!r}")


_validate(CHECKS)

ORDER: tuple[str, ...] = (
    *sorted(c.id for c in CHECKS if c.level == "baseline"),
    *sorted(c.id for c in CHECKS if c.level == "restricted"),
)
"""Upstream evaluation (and message) order: baseline ids sorted, then restricted ids sorted."""
RANK: dict[str, int] = {check_id: rank for rank, check_id in enumerate(ORDER)}

LATEST_MINOR: int = max(check.revisions[-1].since for check in CHECKS)
"""The registry's ``maxVersion`` (v1.37): ``latest`` and any newer version evaluate as this one."""


def _revision_at(check: base.Check, minor: int) -> base.Revision | None:
    found = None
    for revision in check.revisions:
        if revision.since <= minor:
            found = revision
    return found


@functools.cache
def _active(level: str, minor: int) -> Mapping[str, base.CheckImpl]:
    if level == "privileged":
        return {}
    chosen = {
        check.id: revision
        for check in CHECKS
        if (check.level == "baseline" or level == "restricted")
        and (revision := _revision_at(check, minor)) is not None
    }
    overridden = {override for revision in chosen.values() for override in revision.overrides}
    return {
        check_id: chosen[check_id].fn
        for check_id in ORDER
        if check_id in chosen and check_id not in overridden
    }


@functools.lru_cache(maxsize=256)
def active(level: str, version: str) -> Mapping[str, base.CheckImpl]:
    """The check implementations in force at ``level``/``version``, in upstream order.

    Raises :class:`~webhook.validators.pod_security.levels.VersionError` or ``ValueError`` for an
    unknown version or level. Cached: the hot path is one dict lookup per check.
    """
    levels.check_level(level)
    minor = levels.parse_version(version)
    return _active(level, LATEST_MINOR if minor is None else min(minor, LATEST_MINOR))
