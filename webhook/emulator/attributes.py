"""The request being admitted (``admission.Attributes``), built from an object file or a recorded review.

What the API server knows about a request and webhooks match on: operation, kind and resource
(with subresource), namespace and name, the new and old objects, the user, dry-run. For an object
file the resource is derived from the kind (built-in kinds by table, others by the usual plural
rule, or given explicitly), as the API server's REST mapping would. The namespace's labels (for
``namespaceSelector``) always include ``kubernetes.io/metadata.name``, which the API server sets on
every namespace since 1.22.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import yaml

from webhook.emulator import config

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
NAME_LABEL = "kubernetes.io/metadata.name"

# Kinds whose plural is not "lowercase + s", and cluster-scoped built-in kinds.
_PLURALS = {
    "Endpoints": "endpoints",
    "Ingress": "ingresses",
    "IngressClass": "ingressclasses",
    "NetworkPolicy": "networkpolicies",
    "PodSecurityPolicy": "podsecuritypolicies",
    "StorageClass": "storageclasses",
    "PriorityClass": "priorityclasses",
    "RuntimeClass": "runtimeclasses",
    "ResourceQuota": "resourcequotas",
    "ServiceAccountToken": "token",
}
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "APIService",
        "PriorityClass",
        "RuntimeClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "CSIDriver",
        "CSINode",
        "VolumeAttachment",
        "CertificateSigningRequest",
        "ComponentStatus",
        "TokenReview",
        "SubjectAccessReview",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "FlowSchema",
        "PriorityLevelConfiguration",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class UserInfo:
    username: str = "kubernetes-admin"
    uid: str = ""
    groups: tuple[str, ...] = ("system:masters", "system:authenticated")
    extra: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"username": self.username, "groups": list(self.groups)}
        if self.uid:
            data["uid"] = self.uid
        if self.extra:
            data["extra"] = self.extra
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class Attributes:
    operation: Operation
    api_version: str
    """Of the kind: ``apps/v1``; ``v1`` for the core group."""
    kind: str
    resource: str
    subresource: str
    namespace: str
    name: str
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    user: UserInfo = UserInfo()
    dry_run: bool = False
    options: dict[str, Any] | None = None
    namespace_labels: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def request(self, uid: str) -> dict[str, Any]:
        """The v1 ``AdmissionRequest`` sent to a webhook (request/admissionreview.go)."""
        gvk = {"group": self.group, "version": self.version, "kind": self.kind}
        gvr = {"group": self.group, "version": self.version, "resource": self.resource}
        data: dict[str, Any] = {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": self.name,
            "namespace": self.namespace,
            "operation": self.operation,
            "userInfo": self.user.to_dict(),
            "object": self.object,
            "oldObject": self.old_object,
            "dryRun": self.dry_run,
            "options": self.options,
        }
        if self.subresource:
            data["subResource"] = data["requestSubResource"] = self.subresource
        if not self.name:
            del data["name"]
        if not self.namespace:
            del data["namespace"]
        return data

    def cel_variables(self) -> dict[str, Any]:
        """``object``, ``oldObject`` and ``request`` as CEL sees them (no objects inside ``request``)."""
        request = self.request("")
        for key in ("uid", "object", "oldObject"):
            request.pop(key, None)
        return {"object": self.object, "oldObject": self.old_object, "request": request}


def plural(kind: str) -> str:
    """The resource name the API server's REST mapper gives ``kind`` (lowercase plural)."""
    if kind in _PLURALS:
        return _PLURALS[kind]
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


def read_document(path: Path) -> dict[str, Any]:
    """One JSON or YAML mapping from ``path`` (``-`` is not special: pass a file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise config.InvalidInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise config.InvalidInput(f"{path}: not valid YAML or JSON: {exc}") from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise config.InvalidInput(f"{path}: expected exactly one mapping, found {len(docs)} document(s)")
    # Through JSON so YAML timestamps and the like become the strings the API server would see.
    document: dict[str, Any] = json.loads(json.dumps(docs[0], default=str))
    return document


def _labels(namespace: str, given: dict[str, str] | None) -> dict[str, str]:
    labels = dict(given or {})
    if namespace:
        labels.setdefault(NAME_LABEL, namespace)
    return labels


def from_object(
    obj: dict[str, Any],
    *,
    source: str,
    operation: Operation = "CREATE",
    old_object: dict[str, Any] | None = None,
    namespace: str | None = None,
    namespace_labels: dict[str, str] | None = None,
    resource: str | None = None,
    subresource: str = "",
    user: UserInfo | None = None,
    dry_run: bool = False,
) -> Attributes:
    """The request that creates/updates/deletes ``obj`` (read from ``source``, named in errors)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise config.InvalidInput(f"{source}: apiVersion: required (e.g. v1 or apps/v1)")
    if not isinstance(kind, str) or not kind:
        raise config.InvalidInput(f"{source}: kind: required (e.g. Pod)")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise config.InvalidInput(f"{source}: metadata: must be a mapping")
    name = str(metadata.get("name") or "")
    if kind == "Namespace" and api_version == "v1":
        # For a namespace itself, the request's namespace is its own name (rules.go scope()).
        ns = name
    elif kind in CLUSTER_SCOPED:
        ns = ""
    else:
        ns = str(metadata.get("namespace") or namespace or "default")
    new, old = {
        "CREATE": (obj, None),
        "UPDATE": (obj, old_object if old_object is not None else obj),
        "DELETE": (None, obj),
        "CONNECT": (None, None),
    }[operation]
    return Attributes(
        operation=operation,
        api_version=api_version,
        kind=kind,
        resource=resource or plural(kind),
        subresource=subresource,
        namespace=ns,
        name=name,
        object=new,
        old_object=old,
        user=user or UserInfo(),
        dry_run=dry_run,
        namespace_labels=_labels(ns, namespace_labels),
    )


def from_review(
    review: dict[str, Any],
    *,
    source: str,
    operation: Operation | None = None,
    namespace_labels: dict[str, str] | None = None,
    user: UserInfo | None = None,
) -> Attributes:
    """The request recorded in an AdmissionReview (``request`` as the API server sent it)."""
    request = review.get("request")
    if not isinstance(request, dict):
        raise config.InvalidInput(f"{source}: request: required (an AdmissionReview with a request)")
    kind, res = request.get("kind"), request.get("resource")
    if not isinstance(kind, dict) or not kind.get("kind") or not kind.get("version"):
        raise config.InvalidInput(f"{source}: request.kind: required, with version and kind")
    if not isinstance(res, dict) or not res.get("resource"):
        raise config.InvalidInput(f"{source}: request.resource: required, with resource")
    op = operation or request.get("operation")
    if op not in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
        raise config.InvalidInput(f"{source}: request.operation: must be CREATE, UPDATE, DELETE or CONNECT")
    info = request.get("userInfo") or {}
    recorded = UserInfo(
        username=str(info.get("username", "")),
        uid=str(info.get("uid", "")),
        groups=tuple(info.get("groups") or ()),
        extra=dict(info.get("extra") or {}),
    )
    group = kind.get("group") or ""
    ns = str(request.get("namespace") or "")
    return Attributes(
        operation=op,
        api_version=f"{group}/{kind['version']}" if group else str(kind["version"]),
        kind=str(kind["kind"]),
        resource=str(res["resource"]),
        subresource=str(request.get("subResource") or ""),
        namespace=ns,
        name=str(request.get("name") or ""),
        object=request.get("object"),
        old_object=request.get("oldObject"),
        user=user or recorded,
        dry_run=bool(request.get("dryRun")),
        options=request.get("options"),
        namespace_labels=_labels(ns, namespace_labels),
    )
