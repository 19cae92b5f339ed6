"""``hostProbesAndHostLifecycle`` (baseline, v1.34+): probes and hooks may not target another host.

Upstream ``check_hostProbesAndhostLifecycle.go``: ``host`` must be empty in the ``httpGet`` and
``tcpSocket`` handlers of liveness/readiness/startup probes and of postStart/preStop lifecycle
hooks, on every container -- a set host lets the kubelet reach addresses the pod itself cannot.
Container names and hosts are reported as sorted sets, as upstream does.
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HOOKS = ("postStart", "preStop")
_HANDLERS = ("httpGet", "tcpSocket")


def _hosts(handler: Any, where: str, found: list[tuple[str, str]]) -> None:
    if not isinstance(handler, dict):
        return
    for kind in _HANDLERS:
        action = handler.get(kind)
        host = action.get("host") if isinstance(action, dict) else None
        if host:
            found.append((f"{where}.{kind}.host", str(host)))


def host_probes_and_host_lifecycle_v1_34(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    bad: set[str] = set()
    hosts: set[str] = set()
    first: tuple[str, str] | None = None
    for field, index, container in base.containers(spec):
        found: list[tuple[str, str]] = []
        for probe in _PROBES:
            if container.get(probe) is not None:
                _hosts(container[probe], probe, found)
        lifecycle = container.get("lifecycle")
        if isinstance(lifecycle, dict):
            for hook in _HOOKS:
                if lifecycle.get(hook) is not None:
                    _hosts(lifecycle[hook], f"lifecycle.{hook}", found)
        if found:
            bad.add(base.name_of(container))
            hosts.update(host for _where, host in found)
            if first is None:
                first = (f"{base.container_path(field, index)}.{found[0][0]}", found[0][1])
    if first is None:
        return None
    return base.Result(
        "probe or lifecycle host",
        f"{base.containers_phrase(sorted(bad))} "
        f"{base.pluralize('uses', 'use', len(bad))} "
        f"{base.pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
        f"{base.join_quote(sorted(hosts))}",
        first[0],
        first[1],
        "",
    )


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "hostProbesAndHostLifecycle",
        "baseline",
        (base.Revision(34, host_probes_and_host_lifecycle_v1_34),),
        "Probes and lifecycle hooks may not set a host.",
        screen=base.PROBE_HOST,
    ),
)
