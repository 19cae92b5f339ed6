"""``hostNamespaces`` (baseline, v1.0+): sharing the node's network, PID or IPC namespace is forbidden.

Upstream ``check_hostNamespaces.go``: ``spec.hostNetwork``, ``spec.hostPID`` and ``spec.hostIPC``
must be unset or false; the detail lists them in that order.
"""

from __future__ import annotations

from webhook.validators.pod_security import base

_FIELDS = ("hostNetwork", "hostPID", "hostIPC")


def host_namespaces_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    found = [field for field in _FIELDS if spec.get(field) is True]
    if not found:
        return None
    return base.Result(
        "host namespaces", ", ".join(f"{field}=true" for field in found), f"spec.{found[0]}", True, False
    )


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "hostNamespaces",
        "baseline",
        (base.Revision(0, host_namespaces_v1_0),),
        "Host network, PID and IPC namespaces are forbidden.",
        screen=base.HOST_NAMESPACES,
    ),
)
