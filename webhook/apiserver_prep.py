"""What the API server does to a plain manifest before admission webhooks see it.

``review`` wraps a manifest into the request the API server would send; the API server does not
send the manifest as written. It decodes it into the versioned type, running the defaulting
functions (``k8s.io/kubernetes`` ``pkg/apis/core/v1/defaults.go`` and the declarative
``+default`` markers), then runs the registry strategy's ``PrepareForCreate``/``PrepareForUpdate``
(``pkg/api/pod/util.go`` ``DropDisabledPodFields``), and only then calls admission. Judging the
manifest as written would deny what the cluster admits (``procMount: Unmasked`` is reset to
``Default`` while the ``ProcMountType`` gate is off) or have the mutating chain "add" what the API
server already set (``imagePullPolicy``).

Only the fields the policies read are prepared, for the built-in kinds that carry a pod; a value
the manifest sets is never replaced. Recorded AdmissionReviews are never prepared: an API server
already did it. Admission plugins that need a cluster (ServiceAccount, Priority,
DefaultTolerationSeconds, LimitRanger) are not applied.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from webhook import shapes
from webhook.policy import model, workloads

DEFAULT_VERSION = 35
"""The Kubernetes minor version (1.N) whose API server is emulated unless ``--kubernetes-version``."""

PROC_MOUNT_TYPE_DEFAULT_ON = 33
"""``ProcMountType`` gate (``pkg/features/kube_features.go``): ``{1.12 Alpha false}, {1.31 Beta
false}, {1.33 Beta true}``; the first minor in which it is on by default."""

# apiVersion of the built-in kinds that carry a pod; a custom resource named "Deployment" in another
# group is taken as written.
_POD_KIND_VERSIONS: dict[str, str] = {
    "Pod": "v1", "PodTemplate": "v1", "ReplicationController": "v1",
    "Deployment": "apps/v1", "ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
    "Job": "batch/v1", "CronJob": "batch/v1",
}

_CONTAINER_FIELDS = ("containers", "initContainers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def applies(manifest: dict[str, Any]) -> bool:
    """Whether ``manifest`` is a built-in kind whose pod the API server defaults."""
    kind = manifest.get("kind")
    return isinstance(kind, str) and _POD_KIND_VERSIONS.get(kind) == manifest.get("apiVersion")


def prepare(
    manifest: dict[str, Any],
    *,
    source: str,
    operation: model.Operation = "CREATE",
    kubernetes_version: int = DEFAULT_VERSION,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``manifest`` as the API server of 1.``kubernetes_version`` passes it to admission webhooks.

    Returns a copy (the manifest is not changed); other kinds and operations come back unchanged.
    ``old`` is the stored object of an UPDATE (default: the manifest itself, as ``review`` sends it).
    Raises :class:`shapes.Refused` when the API server's validation refuses the pod.
    """
    if operation not in ("CREATE", "UPDATE") or not applies(manifest):
        return manifest
    obj = copy.deepcopy(manifest)
    kind = str(obj["kind"])
    target = workloads.pod_target(obj, kind)
    if target is None:
        return obj  # shapes.check reports a missing pod spec
    spec = target.spec
    _default_pod_spec(spec, kind=kind)
    if kind == "Pod":
        _default_pod(spec)
    old_target = workloads.pod_target(old if old is not None else manifest, kind) if operation == "UPDATE" else None
    _drop_disabled_proc_mount(spec, old_target.spec if old_target is not None else None, kubernetes_version)
    _validate_proc_mount(spec, where=f"{source}: {target.spec_path}", kubernetes_version=kubernetes_version)
    return obj


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for field in _CONTAINER_FIELDS:
        items = spec.get(field)
        if isinstance(items, list):
            for index, container in enumerate(items):
                if isinstance(container, dict):
                    yield field, index, container


# --- defaulting (pkg/apis/core/v1/defaults.go) ---------------------------------------------------


def pull_policy(image: str) -> str:
    """``SetDefaults_Container``: ``Always`` when the tag is ``latest``, else ``IfNotPresent``.

    ``parsers.ParseImageName`` takes the tag after the last ``:`` of the last path component (so
    ``registry:5000/app`` has none) and, with neither tag nor digest, assumes ``latest``.
    """
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_container(container: dict[str, Any]) -> None:
    image = container.get("image")
    if "imagePullPolicy" not in container and isinstance(image, str):
        container["imagePullPolicy"] = pull_policy(image)
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    ports = container.get("ports")
    for port in ports if isinstance(ports, list) else ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")  # ContainerPort.Protocol: +default="TCP"
    for name in _PROBES:
        probe = container.get(name)
        if isinstance(probe, dict):
            # SetDefaults_Probe and SetDefaults_HTTPGetAction.
            for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                               ("failureThreshold", 3)):
                probe.setdefault(key, value)
            http_get = probe.get("httpGet")
            if isinstance(http_get, dict):
                http_get.setdefault("path", "/")
                http_get.setdefault("scheme", "HTTP")


def _default_pod_spec(spec: dict[str, Any], *, kind: str) -> None:
    """``SetDefaults_PodSpec`` (Pods and every pod template) and ``SetDefaults_Container``."""
    spec.setdefault("dnsPolicy", "ClusterFirst")
    if kind not in ("Job", "CronJob"):
        # A Job's template gets Always too, and then Job validation refuses it (OnFailure or Never
        # only); leave it as written rather than claim a value the cluster would never keep.
        spec.setdefault("restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    for _, _, container in _containers(spec):
        _default_container(container)


def _default_pod(spec: dict[str, Any]) -> None:
    """``SetDefaults_Pod``: Pods only, not templates (it says so, to keep templates stable)."""
    for field in ("containers", "initContainers"):
        items = spec.get(field)
        for container in items if isinstance(items, list) else ():
            if not isinstance(container, dict) or not isinstance(container.get("resources"), dict):
                continue
            resources = container["resources"]
            limits = resources.get("limits")
            if not isinstance(limits, dict) or not limits:
                continue
            requests = resources.get("requests")
            if not isinstance(requests, dict):
                requests = resources["requests"] = {}
            for name, value in limits.items():
                requests.setdefault(name, value)  # requests default to limits, per resource
    spec.setdefault("enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        # defaultHostNetworkPorts: with the host's network, a container port is a host port.
        for field in ("containers", "initContainers"):
            items = spec.get(field)
            for container in items if isinstance(items, list) else ():
                ports = container.get("ports") if isinstance(container, dict) else None
                for port in ports if isinstance(ports, list) else ():
                    if isinstance(port, dict) and not port.get("hostPort") and "containerPort" in port:
                        port["hostPort"] = port["containerPort"]


# --- procMount (pkg/api/pod/util.go, pkg/apis/core/validation) ----------------------------------


def _proc_mount_in_use(spec: dict[str, Any] | None) -> bool:
    """``procMountInUse``: some container of the old spec sets a procMount other than Default."""
    if spec is None:
        return False
    for _, _, container in _containers(spec):
        context = container.get("securityContext")
        value = context.get("procMount") if isinstance(context, dict) else None
        if value is not None and value != "Default":
            return True
    return False


def _drop_disabled_proc_mount(spec: dict[str, Any], old: dict[str, Any] | None, version: int) -> None:
    """``dropDisabledProcMountField``: with the ``ProcMountType`` gate off, a procMount that is set
    is forced to ``Default`` (on UPDATE only when the stored object uses none)."""
    if version >= PROC_MOUNT_TYPE_DEFAULT_ON or _proc_mount_in_use(old):
        return
    for _, _, container in _containers(spec):
        context = container.get("securityContext")
        if isinstance(context, dict) and context.get("procMount") is not None:
            context["procMount"] = "Default"


def _validate_proc_mount(spec: dict[str, Any], *, where: str, kubernetes_version: int) -> None:
    """With the gate on, pod validation refuses ``Unmasked`` unless the pod has its own user
    namespace (``hostUsers: false``): the request never reaches a validating webhook."""
    if kubernetes_version < PROC_MOUNT_TYPE_DEFAULT_ON:
        return
    if spec.get("hostUsers") is False:
        return
    for field, index, container in _containers(spec):
        sc = container.get("securityContext")
        if isinstance(sc, dict) and sc.get("procMount") == "Unmasked":
            raise shapes.Refused(f'{where}.{field}[{index}].securityContext.procMount: Invalid value: "Unmasked": '
                                 "`hostUsers` must be false to use `Unmasked`")
