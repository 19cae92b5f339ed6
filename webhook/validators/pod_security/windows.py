"""``windowsHostProcess`` (baseline, v1.0+): Windows HostProcess containers get full node access.

Upstream ``check_windowsHostProcess.go``: ``securityContext.windowsOptions.hostProcess`` must be
unset or false at pod level and on every container.
"""

from __future__ import annotations

from typing import Any

from webhook.validators.pod_security import base


def _host_process(sc: Any) -> bool:
    options = sc.get("windowsOptions") if isinstance(sc, dict) else None
    return isinstance(options, dict) and options.get("hostProcess") is True


def windows_host_process_v1_0(meta: base.Pod, spec: base.Pod) -> base.Result | None:
    setters: list[str] = []
    first: str | None = None
    if _host_process(spec.get("securityContext")):
        setters.append("pod")
        first = "spec.securityContext.windowsOptions.hostProcess"
    bad: list[str] = []
    for field, index, container in base.containers(spec):
        if _host_process(container.get("securityContext")):
            bad.append(base.name_of(container))
            if first is None:
                first = f"{base.container_path(field, index)}.securityContext.windowsOptions.hostProcess"
    if bad:
        setters.append(f"{base.containers_phrase(bad)}")
    if first is None:
        return None
    return base.Result(
        "hostProcess",
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
        first,
        True,
        False,
    )


CHECKS: tuple[base.Check, ...] = (
    base.Check(
        "windowsHostProcess",
        "baseline",
        (base.Revision(0, windows_host_process_v1_0),),
        "Windows HostProcess pods and containers are forbidden.",
        screen=base.HOST_PROCESS,
    ),
)
