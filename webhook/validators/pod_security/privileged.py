"""``privileged`` (baseline, v1.0+): privileged containers disable most security mechanisms.

Upstream ``check_privileged.go``: ``securityContext.privileged`` must be unset or false on every
init, regular and ephemeral container.
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base


def privileged_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    bad: list[str] = []
    first: tuple[str, Any] | None = None
    for field, index, container in base.containers(spec):
        sc = base.security_context(container)
        if sc is not None and sc.get("privileged") is True:
            bad.append(base.name_of(container))
            if first is None:
                first = (f"{base.container_path(field, index)}.securityContext.privileged", True)
    if first is None:
        return None
    return base.Result(
        "privileged",
        f"{base.containers_phrase(bad)} "
        "must not set securityContext.privileged=true",
        first[0],
        first[1],
        False,
    )


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "privileged", "baseline", (base.Revision(0, privileged_v1_0),), "Privileged containers are forbidden.",
        screen=base.PRIVILEGED,
    ),
)
