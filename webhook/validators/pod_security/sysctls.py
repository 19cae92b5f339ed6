"""``sysctls`` (baseline): only sysctls that are namespaced and isolated per pod are allowed.

Upstream ``check_sysctls.go``: ``spec.securityContext.sysctls[*].name`` must be in the safe set of
the policy version. The set grew at v1.27 (``ip_local_reserved_ports``), v1.29 (TCP keepalive and
``tcp_fin_timeout``), v1.32 (``tcp_rmem``/``tcp_wmem``) and v1.37 (``tcp_slow_start_after_idle``,
``tcp_notsent_lowat``); pinning an older version keeps the older set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from webhook.validators.pod_security import base

ALLOWED_V1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
ALLOWED_V1_27 = ALLOWED_V1_0 | {"net.ipv4.ip_local_reserved_ports"}
ALLOWED_V1_29 = ALLOWED_V1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
ALLOWED_V1_32 = ALLOWED_V1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
ALLOWED_V1_37 = ALLOWED_V1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset[str]) -> Callable[[base.Pod, base.Pod], base.Result | None]:
    def check(meta: base.Pod, spec: base.Pod) -> base.Result | None:
        sc = base.pod_security_context(spec)
        entries = sc.get("sysctls") if sc is not None else None
        if not isinstance(entries, list):
            return None
        forbidden: list[str] = []
        first: tuple[str, Any] | None = None
        for index, entry in enumerate(entries):
            name = entry.get("name", "") if isinstance(entry, dict) else ""
            if not base.among(name, allowed):
                forbidden.append(str(name))
                if first is None:
                    first = (f"spec.securityContext.sysctls[{index}].name", name)
        if first is None:
            return None
        return base.Result("forbidden sysctls", ", ".join(forbidden), first[0], first[1], sorted(allowed))

    return check


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "sysctls",
        "baseline",
        (
            base.Revision(0, _sysctls(ALLOWED_V1_0)),
            base.Revision(27, _sysctls(ALLOWED_V1_27)),
            base.Revision(29, _sysctls(ALLOWED_V1_29)),
            base.Revision(32, _sysctls(ALLOWED_V1_32)),
            base.Revision(37, _sysctls(ALLOWED_V1_37)),
        ),
        "Only the safe, namespaced sysctls are allowed.",
        screen=base.SYSCTLS,
    ),
)
