"""``seLinuxOptions`` (baseline): custom SELinux user/role are forbidden; the type is restricted.

Upstream ``check_seLinuxOptions.go``: pod and container ``seLinuxOptions.type`` must be empty,
``container_t``, ``container_init_t`` or ``container_kvm_t``, and from v1.31 also
``container_engine_t``; ``user`` and ``role`` must be empty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from webhook.validators.pod_security import base

ALLOWED_TYPES_V1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
ALLOWED_TYPES_V1_31 = ALLOWED_TYPES_V1_0 | {"container_engine_t"}


def _se_linux_options(allowed: frozenset[str]) -> Callable[[base.Pod, base.Pod], base.Result | None]:
    def check(meta: base.Pod, spec: base.Pod) -> base.Result | None:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}
        first: tuple[str, Any] | None = None

        def valid(sc: Any, field: str | None, index: int = 0) -> bool:
            nonlocal first
            options = sc.get("seLinuxOptions") if isinstance(sc, dict) else None
            if not isinstance(options, dict):
                return True
            ok = True
            kind = options.get("type") or ""
            if not base.among(kind, allowed):
                ok = False
                bad_types.add(str(kind))
            for key in ("user", "role"):
                if options.get(key):
                    ok = False
                    flags[key] = True
            if not ok and first is None:
                owner = "spec" if field is None else base.container_path(field, index)
                first = (f"{owner}.securityContext.seLinuxOptions", options)
            return ok

        setters: list[str] = []
        if not valid(spec.get("securityContext"), None):
            setters.append("pod")
        bad_containers = [
            base.name_of(container)
            for field, index, container in base.containers(spec)
            if not valid(container.get("securityContext"), field, index)
        ]
        if bad_containers:
            setters.append(base.containers_phrase(bad_containers))
        if first is None:
            return None
        data: list[str] = []
        if bad_types:
            data.append(
                f"{base.pluralize('type', 'types', len(bad_types))} {base.join_quote(sorted(bad_types))}"
            )
        if flags["user"]:
            data.append("user may not be set")
        if flags["role"]:
            data.append("role may not be set")
        return base.Result(
            "seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}",
            first[0],
            first[1],
            sorted(allowed),
        )

    return check


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "seLinuxOptions",
        "baseline",
        (
            base.Revision(0, _se_linux_options(ALLOWED_TYPES_V1_0)),
            base.Revision(31, _se_linux_options(ALLOWED_TYPES_V1_31)),
        ),
        "SELinux user and role may not be set; the type must be one of the container types.",
        screen=base.SE_LINUX,
    ),
)
