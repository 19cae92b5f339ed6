"""``allowPrivilegeEscalation`` (restricted, v1.8+): setuid binaries must not gain privileges.

Upstream ``check_allowPrivilegeEscalation.go``: every container must set
``securityContext.allowPrivilegeEscalation: false`` explicitly (unset defaults to true). The field
appeared in Kubernetes 1.8, so the check applies from policy v1.8; from v1.25 pods with
``spec.os.name: windows`` are exempt (the field is Linux-only).
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base


def allow_privilege_escalation_v1_8(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    bad: list[str] = []
    first: tuple[str, Any] | None = None
    for field, index, container in base.containers(spec):
        sc = base.security_context(container)
        value = sc.get("allowPrivilegeEscalation") if sc is not None else None
        if value is not False:
            bad.append(base.name_of(container))
            if first is None:
                first = (
                    f"{base.container_path(field, index)}.securityContext.allowPrivilegeEscalation",
                    value,
                )
    if first is None:
        return None
    return base.Result(
        "allowPrivilegeEscalation != false",
        f"{base.containers_phrase(bad)} "
        "must set securityContext.allowPrivilegeEscalation=false",
        first[0],
        first[1],
        False,
    )


def allow_privilege_escalation_v1_25(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    if base.is_windows(spec):
        return None
    return allow_privilege_escalation_v1_8(meta, spec)


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "allowPrivilegeEscalation",
        "restricted",
        (
            base.Revision(8, allow_privilege_escalation_v1_8),
            base.Revision(25, allow_privilege_escalation_v1_25),
        ),
        "Containers must set allowPrivilegeEscalation: false.",
        screen=base.PRIVILEGE_ESCALATION,
    ),
)
