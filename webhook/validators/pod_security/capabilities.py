"""``capabilities_baseline`` (baseline) and ``capabilities_restricted`` (restricted, v1.22+).

Upstream ``check_capabilities_baseline.go``: ``capabilities.add`` may only hold the container
runtime's default set. ``check_capabilities_restricted.go``: every container must drop ``ALL`` and
may add only ``NET_BIND_SERVICE``; it overrides the baseline check from v1.22 (before that, restricted
runs the baseline check), and from v1.25 pods with ``spec.os.name: windows`` are exempt.
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base

BASELINE_ALLOWED = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def _capabilities(container: dict[str, Any]) -> dict[str, Any] | None:
    sc = base.security_context(container)
    caps = sc.get("capabilities") if sc is not None else None
    return caps if isinstance(caps, dict) else None


def _caps_path(field: str, index: int) -> str:
    return f"{base.container_path(field, index)}.securityContext.capabilities"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def capabilities_baseline_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    bad: list[str] = []
    added: set[str] = set()
    first: tuple[str, Any] | None = None
    for field, index, container in base.containers(spec):
        caps = _capabilities(container)
        if caps is None:
            continue
        valid = True
        for cap_index, cap in enumerate(_list(caps.get("add"))):
            if not base.among(cap, BASELINE_ALLOWED):
                valid = False
                added.add(str(cap))
                if first is None:
                    first = (
                        f"{base.container_path(field, index)}.securityContext.capabilities.add[{cap_index}]",
                        cap,
                    )
        if not valid:
            bad.append(base.name_of(container))
    if first is None:
        return None
    return base.Result(
        "non-default capabilities",
        f"{base.containers_phrase(bad)} "
        f"must not include {base.join_quote(sorted(added))} in securityContext.capabilities.add",
        first[0],
        first[1],
        sorted(BASELINE_ALLOWED),
    )


def capabilities_restricted_v1_22(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    first_drop: tuple[str, Any] | None = None
    first_add: tuple[str, Any] | None = None
    for field, index, container in base.containers(spec):
        caps = _capabilities(container)
        if caps is None:
            missing_drop.append(base.name_of(container))
            if first_drop is None:
                first_drop = (f"{_caps_path(field, index)}.drop", None)
            continue
        drop = caps.get("drop")
        if "ALL" not in _list(drop):
            missing_drop.append(base.name_of(container))
            if first_drop is None:
                first_drop = (f"{_caps_path(field, index)}.drop", drop)
        added_forbidden = False
        for cap_index, cap in enumerate(_list(caps.get("add"))):
            if cap != "NET_BIND_SERVICE":
                added_forbidden = True
                forbidden.add(str(cap))
                if first_add is None:
                    first_add = (f"{_caps_path(field, index)}.add[{cap_index}]", cap)
        if added_forbidden:
            adding.append(base.name_of(container))
    details: list[str] = []
    if missing_drop:
        details.append(
            f"{base.containers_phrase(missing_drop)} "
            'must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{base.containers_phrase(adding)} "
            f"must not include {base.join_quote(sorted(forbidden))} in securityContext.capabilities.add"
        )
    if not details:
        return None
    if first_drop is not None:
        return base.Result(
            "unrestricted capabilities", "; ".join(details), first_drop[0], first_drop[1], ["ALL"]
        )
    assert first_add is not None
    return base.Result(
        "unrestricted capabilities", "; ".join(details), first_add[0], first_add[1], ["NET_BIND_SERVICE"]
    )


def capabilities_restricted_v1_25(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    # The API server rejects capabilities on Windows pods, so there is nothing to require of them.
    if base.is_windows(spec):
        return None
    return capabilities_restricted_v1_22(meta, spec)


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "capabilities_baseline",
        "baseline",
        (base.Revision(0, capabilities_baseline_v1_0),),
        "Only the container runtime's default capabilities may be added.",
        screen=base.CAPABILITIES_ADDED,
    ),
    base.Check(
        "capabilities_restricted",
        "restricted",
        (
            base.Revision(22, capabilities_restricted_v1_22, overrides=("capabilities_baseline",)),
            base.Revision(25, capabilities_restricted_v1_25, overrides=("capabilities_baseline",)),
        ),
        "Containers must drop ALL capabilities and may add only NET_BIND_SERVICE.",
        screen=base.CAPABILITIES_KEPT | base.CAPABILITIES_ADDED,
    ),
)
