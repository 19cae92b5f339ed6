"""``procMount`` (baseline) and ``procMount_restricted`` (restricted, v1.35+, overrides ``procMount``).

Upstream ``check_procMount_baseline.go`` / ``check_procMount_restricted.go``: the default ``/proc``
masks must stay, so ``securityContext.procMount`` must be unset or ``Default``. From v1.35 baseline
allows any value for a pod in a user namespace (``hostUsers: false``, KEP-127) -- before v1.35 that
relaxation sat behind a perma-alpha feature gate, off by default, so older versions never relax.
Restricted keeps the strict rule for every pod through ``procMount_restricted``.
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base


def proc_mount_strict(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    bad: list[str] = []
    kinds: set[str] = set()
    first: tuple[str, Any] | None = None
    for field, index, container in base.containers(spec):
        sc = base.security_context(container)
        if sc is None:
            continue
        value = sc.get("procMount")
        if value is None or value == "Default":
            continue
        bad.append(base.name_of(container))
        kinds.add(str(value))
        if first is None:
            first = (f"{base.container_path(field, index)}.securityContext.procMount", value)
    if first is None:
        return None
    return base.Result(
        "procMount",
        f"{base.containers_phrase(bad)} "
        f"must not set securityContext.procMount to {base.join_quote(sorted(kinds))}",
        first[0],
        first[1],
        "Default",
    )


def proc_mount_baseline_v1_35(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    # In a user namespace an unmasked /proc exposes only the pod's own namespace (KEP-127).
    if base.in_user_namespace(spec):
        return None
    return proc_mount_strict(meta, spec)


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "procMount",
        "baseline",
        (base.Revision(0, proc_mount_strict), base.Revision(35, proc_mount_baseline_v1_35)),
        "The default /proc masks must be kept (any procMount is allowed with hostUsers: false).",
        screen=base.PROC_MOUNT,
    ),
    base.Check(
        "procMount_restricted",
        "restricted",
        (base.Revision(35, proc_mount_strict, overrides=("procMount",)),),
        "The default /proc masks must be kept, even in a user namespace.",
        screen=base.PROC_MOUNT,
    ),
)
