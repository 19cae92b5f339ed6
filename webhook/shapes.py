"""Manifests the API server would refuse before admission, refused here too.

``review`` wraps a plain manifest into the request the API server would send. A manifest it would
never send (an unknown kind in a built-in API group, a container list that is a string) must not
be reported "allowed": that would tell a user a broken file is fine. The checks are the API
server's decoding and its first validations of the fields the policies read, not full schema
validation: a custom resource (an API group not listed here) is taken as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook import errors
from webhook.policy import workloads

BUILT_IN_KINDS: Mapping[str, frozenset[str]] = {
    "v1": frozenset({
        "Pod", "Service", "ConfigMap", "Secret", "ServiceAccount", "Namespace", "Node", "PersistentVolume",
        "PersistentVolumeClaim", "ReplicationController", "PodTemplate", "Endpoints", "Event", "LimitRange",
        "ResourceQuota", "Binding", "ComponentStatus", "List",
    }),
    "apps/v1": frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ControllerRevision"}),
    "batch/v1": frozenset({"Job", "CronJob"}),
    "rbac.authorization.k8s.io/v1": frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}),
    "storage.k8s.io/v1": frozenset({"StorageClass", "CSIDriver", "CSINode", "VolumeAttachment",
                                    "CSIStorageCapacity", "VolumeAttributesClass"}),
    "networking.k8s.io/v1": frozenset({"Ingress", "IngressClass", "NetworkPolicy", "IPAddress", "ServiceCIDR"}),
    "policy/v1": frozenset({"PodDisruptionBudget", "Eviction"}),
    "autoscaling/v1": frozenset({"HorizontalPodAutoscaler", "Scale"}),
    "autoscaling/v2": frozenset({"HorizontalPodAutoscaler"}),
    "scheduling.k8s.io/v1": frozenset({"PriorityClass"}),
    "node.k8s.io/v1": frozenset({"RuntimeClass"}),
    "coordination.k8s.io/v1": frozenset({"Lease"}),
    "discovery.k8s.io/v1": frozenset({"EndpointSlice"}),
    "certificates.k8s.io/v1": frozenset({"CertificateSigningRequest"}),
    "admissionregistration.k8s.io/v1": frozenset({
        "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }),
    "apiextensions.k8s.io/v1": frozenset({"CustomResourceDefinition"}),
}
"""Kinds each built-in group/version serves (Kubernetes 1.34); a kind missing here is refused
as the API server refuses it: ``no matches for kind "Deployment2" in version "apps/v1"``."""


class Refused(errors.WebhookError):
    """A manifest the API server would refuse; the message names the document and the field."""


def check(manifest: Mapping[str, Any], *, source: str) -> None:
    """Raise :class:`Refused` when the API server would not accept ``manifest`` as written."""
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    if not isinstance(kind, str) or not kind or not isinstance(api_version, str) or not api_version:
        return  # wrapping the manifest reports what is missing
    served = BUILT_IN_KINDS.get(api_version)
    if served is not None and kind not in served:
        raise Refused(f'{source}: no matches for kind "{kind}" in version "{api_version}"')
    metadata = manifest.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise Refused(f"{source}: metadata: Invalid value: must be an object")
    target = workloads.pod_target(dict(manifest), kind) if kind in workloads.POD_KINDS else None
    if kind in workloads.POD_KINDS and target is None:
        where = "spec" if kind == "Pod" else "the pod template's spec"
        raise Refused(f"{source}: {where}: Required value: a {kind} needs a pod spec with containers")
    if target is not None:
        _check_pod_spec(target.spec, f"{source}: {target.spec_path}")


def _check_pod_spec(spec: Mapping[str, Any], where: str) -> None:
    for field in ("containers", "initContainers", "ephemeralContainers"):
        items = spec.get(field)
        if items is None:
            continue
        if not isinstance(items, list):
            raise Refused(f"{where}.{field}: Invalid value: must be a list of containers, "
                          f"got {type(items).__name__}")
        for index, container in enumerate(items):
            if not isinstance(container, dict):
                raise Refused(f"{where}.{field}[{index}]: Invalid value: must be an object")
            name = container.get("name")
            if not isinstance(name, str) or not name:
                raise Refused(f"{where}.{field}[{index}].name: Required value")
    if not spec.get("containers"):
        raise Refused(f"{where}.containers: Required value")
