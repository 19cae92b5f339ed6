"""Where the pod lives in each kind that carries one, so a Pod policy applies to every workload.

Pod Security admission evaluates the same pod checks on Pods and on the templates of these kinds
(``k8s.io/pod-security-admission/admission``: ``PodSpecExtractor``); we follow the same list.
"""

from __future__ import annotations

from typing import Any

from webhook.policy import model

# kind -> keys from the object root to the dict that holds the pod's ``metadata`` and ``spec``.
TEMPLATE_HOLDERS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "PodTemplate": ("template",),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
POD_KINDS: frozenset[str] = frozenset(TEMPLATE_HOLDERS)

def pod_target(obj: Any, kind: str) -> model.PodTarget | None:
    """The pod in ``obj`` of ``kind``, or ``None`` when the kind has none or the object lacks a spec.

    Shapes that are wrong (a template that is a list, a spec that is a string) yield ``None``: the
    API server's own validation rejects those objects, and a policy must not crash on them.
    """
    keys = TEMPLATE_HOLDERS.get(kind)
    if keys is None or not isinstance(obj, dict):
        return None
    holder: Any = obj
    for key in keys:
        holder = holder.get(key) if isinstance(holder, dict) else None
    if not isinstance(holder, dict):
        return None
    spec = holder.get("spec")
    if not isinstance(spec, dict):
        return None
    metadata = holder.get("metadata")
    prefix = ".".join(keys)
    return model.PodTarget(
        obj=obj,
        kind=kind,
        spec=spec,
        metadata=metadata if isinstance(metadata, dict) else None,
        holder=holder,
        spec_path=f"{prefix}.spec" if prefix else "spec",
        meta_path=f"{prefix}.metadata" if prefix else "metadata",
    )


def containers(spec: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """Every container of a pod spec as ``(field, index, container)``: init, regular, ephemeral.

    The order matches Pod Security admission's ``visitContainers`` (initContainers, containers,
    ephemeralContainers) so messages list containers in the same order. Non-dict entries are skipped.
    """
    found: list[tuple[str, int, dict[str, Any]]] = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        items = spec.get(field)
        if isinstance(items, list):
            for index, container in enumerate(items):
                if isinstance(container, dict):
                    found.append((field, index, container))
    return found
