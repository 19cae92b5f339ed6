"""``hostPorts`` (baseline, v1.0+): binding a container port on the node is forbidden.

Upstream ``check_hostPorts.go``: every ``ports[*].hostPort`` must be unset or 0. The detail lists
containers in visit order and the distinct ports sorted as strings (Go ``sets.String.List``).
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base


def host_ports_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    bad: list[str] = []
    ports: set[str] = set()
    first: tuple[str, Any] | None = None
    for field, index, container in base.containers(spec):
        declared = container.get("ports")
        if not isinstance(declared, list):
            continue
        valid = True
        for port_index, port in enumerate(declared):
            host_port = port.get("hostPort") if isinstance(port, dict) else None
            if host_port:
                valid = False
                ports.add(str(host_port))
                if first is None:
                    first = (f"{base.container_path(field, index)}.ports[{port_index}].hostPort", host_port)
        if not valid:
            bad.append(base.name_of(container))
    if first is None:
        return None
    return base.Result(
        "hostPort",
        f"{base.containers_phrase(bad)} "
        f"{base.pluralize('uses', 'use', len(bad))} {base.pluralize('hostPort', 'hostPorts', len(ports))} "
        + ", ".join(sorted(ports)),
        first[0],
        first[1],
        0,
    )


CHECKS: tuple[base.Check, ...] = (
    base.Check("hostPorts", "baseline", (base.Revision(0, host_ports_v1_0),), "Host ports are forbidden.",
               screen=base.HOST_PORT),
)
