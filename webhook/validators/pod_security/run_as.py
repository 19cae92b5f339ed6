"""``runAsNonRoot`` (restricted, v1.0+) and ``runAsUser`` (restricted, v1.23+): never run as root.

Upstream ``check_runAsNonRoot.go``: ``runAsNonRoot`` must be true at pod level (containers may then
leave it unset) or on every container, and nothing may set it false. ``check_runAsUser.go``: no pod
or container may set ``runAsUser: 0``. From v1.35 both are skipped for pods in a user namespace
(``hostUsers: false``, KEP-127): root there maps to an unprivileged host user. Before v1.35 that
relaxation sat behind a perma-alpha feature gate, off by default, so older versions never relax.
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base


def run_as_non_root_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    setters: list[str] = []
    first: tuple[str, Any] | None = None
    pod_non_root = False
    pod_sc = base.pod_security_context(spec)
    pod_value = pod_sc.get("runAsNonRoot") if pod_sc is not None else None
    if pod_value is not None:
        if pod_value is False:
            setters.append("pod")
            first = ("spec.securityContext.runAsNonRoot", False)
        else:
            pod_non_root = True
    explicit: list[str] = []
    implicit: list[str] = []
    first_implicit: str | None = None
    for field, index, container in base.containers(spec):
        sc = base.security_context(container)
        value = sc.get("runAsNonRoot") if sc is not None else None
        if value is not None:
            if value is False:
                explicit.append(base.name_of(container))
                if first is None:
                    first = (f"{base.container_path(field, index)}.securityContext.runAsNonRoot", False)
        elif not pod_non_root:
            implicit.append(base.name_of(container))
            if first_implicit is None:
                first_implicit = f"{base.container_path(field, index)}.securityContext.runAsNonRoot"
    if explicit:
        setters.append(
            f"{base.containers_phrase(explicit)}"
        )
    if first is not None:
        return base.Result(
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
            first[0],
            first[1],
            True,
        )
    if first_implicit is not None:
        return base.Result(
            "runAsNonRoot != true",
            f"pod or {base.containers_phrase(implicit)} "
            "must set securityContext.runAsNonRoot=true",
            first_implicit,
            None,
            True,
        )
    return None


def _is_root(sc: Any) -> bool:
    if not isinstance(sc, dict):
        return False
    value = sc.get("runAsUser")
    return value == 0 and value is not False


def run_as_user_v1_23(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    setters: list[str] = []
    first: str | None = None
    if _is_root(spec.get("securityContext")):
        setters.append("pod")
        first = "spec.securityContext.runAsUser"
    bad: list[str] = []
    for field, index, container in base.containers(spec):
        if _is_root(container.get("securityContext")):
            bad.append(base.name_of(container))
            if first is None:
                first = f"{base.container_path(field, index)}.securityContext.runAsUser"
    if bad:
        setters.append(f"{base.containers_phrase(bad)}")
    if first is None:
        return None
    return base.Result(
        "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0", first, 0, "non-zero"
    )


def run_as_non_root_v1_35(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    if base.in_user_namespace(spec):
        return None
    return run_as_non_root_v1_0(meta, spec)


def run_as_user_v1_35(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    if base.in_user_namespace(spec):
        return None
    return run_as_user_v1_23(meta, spec)


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "runAsNonRoot",
        "restricted",
        (base.Revision(0, run_as_non_root_v1_0), base.Revision(35, run_as_non_root_v1_35)),
        "Containers must run with runAsNonRoot: true.",
        screen=base.MAYBE_ROOT,
    ),
    base.Check(
        "runAsUser",
        "restricted",
        (base.Revision(23, run_as_user_v1_23), base.Revision(35, run_as_user_v1_35)),
        "Containers must not set runAsUser: 0.",
        screen=base.ROOT_USER,
    ),
)
