"""The Mutating/ValidatingWebhookConfiguration that route the API server's calls to this server.

One webhook per policy group, each on its own path (``/validate/<group>``, ``/mutate/<group>``),
so every group gets the failurePolicy and timeout that suit it. The split follows Pod Security
admission's webhook deployment: what *enforces* is registered fail-closed (``Fail``) with a short
timeout, so an outage cannot be used to slip past it; what only mutates or advises is registered
fail-open (``Ignore``), so an outage of a convenience never blocks the cluster.

Every webhook excludes ``kube-system``, ``kube-node-lease`` and the webhook's own namespace by
the immutable ``kubernetes.io/metadata.name`` label, so a broken webhook can never block the
Pods that would repair it (nor the node heartbeats). ``namespaceSelector`` has no effect on
cluster-scoped objects (ClusterRoles, PersistentVolumes, StorageClasses): those always match.

Building the configurations is pure (dicts in, dicts out). This module and :mod:`webhook.cluster`
are the only ones that talk to the API server; ``kubernetes`` is imported inside the functions
that need it, so ``--dry-run`` and the tests work without it being configured.
"""

from __future__ import annotations

import base64
import dataclasses
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import yaml

from webhook import errors
from webhook.policy import registry

CONFIG_NAME = "admission-webhook"
"""Name of both configurations (the two kinds have separate name spaces)."""
WEBHOOK_DOMAIN = "admission.dev"
"""Webhook names must be fully qualified (``<group>.admission.dev``); the API server rejects others."""
DEFAULT_NAMESPACE = "admission-webhook"
DEFAULT_SERVICE = ("admission-webhook", "admission-webhook")
SYSTEM_NAMESPACES = ("kube-system", "kube-node-lease")
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every Namespace (v1.21+) and not changeable by users."""
LABELS = {"app.kubernetes.io/name": "admission-webhook", "app.kubernetes.io/part-of": "admission-webhook"}
MAX_TIMEOUT = 30
"""The API server rejects ``timeoutSeconds`` above 30."""

FailurePolicy = Literal["Fail", "Ignore"]

RESOURCES: Mapping[str, tuple[str, str, str]] = {
    # kind -> (apiGroup, apiVersion, resource). With matchPolicy Equivalent the API server also
    # sends requests made through other versions of the same resource, converted to these.
    "Pod": ("", "v1", "pods"),
    "ReplicationController": ("", "v1", "replicationcontrollers"),
    "PodTemplate": ("", "v1", "podtemplates"),
    "PersistentVolumeClaim": ("", "v1", "persistentvolumeclaims"),
    "PersistentVolume": ("", "v1", "persistentvolumes"),
    "Deployment": ("apps", "v1", "deployments"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Role": ("rbac.authorization.k8s.io", "v1", "roles"),
    "ClusterRole": ("rbac.authorization.k8s.io", "v1", "clusterroles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
    "StorageClass": ("storage.k8s.io", "v1", "storageclasses"),
}
OPERATION_ORDER = ("CREATE", "UPDATE", "DELETE", "CONNECT")


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """How to register; the defaults are the recommended split."""

    namespace: str = DEFAULT_NAMESPACE
    """The webhook's own namespace, always excluded."""
    failure_policy_enforcing: FailurePolicy = "Fail"
    failure_policy_advisory: FailurePolicy = "Ignore"
    timeout_enforcing: int = 5
    timeout_advisory: int = 3
    advisory_groups: frozenset[str] = frozenset()
    """Validating groups registered as advisory (their policy mode is warn/audit: nothing to enforce)."""

    def __post_init__(self) -> None:
        for timeout in (self.timeout_enforcing, self.timeout_advisory):
            if not 1 <= timeout <= MAX_TIMEOUT:
                raise errors.WebhookError(
                    f"timeoutSeconds must be between 1 and {MAX_TIMEOUT}, got {timeout}"
                )


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where the API server sends reviews: a Service in the cluster, or an ``https://`` URL outside it."""

    service: tuple[str, str] | None = None
    """``(namespace, name)``; the API server dials port 443 of the Service."""
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.service is None) == (self.url is None):
            raise errors.WebhookError("give exactly one of --service ns/name or --url https://...")
        if self.url is not None:
            parts = urllib.parse.urlsplit(self.url)
            # The API server's own validation of clientConfig.url.
            if parts.scheme != "https" or not parts.hostname:
                raise errors.WebhookError(f"--url {self.url!r}: must be https://host[:port][/path]")
            if parts.query or parts.fragment or parts.username or parts.password:
                raise errors.WebhookError(f"--url {self.url!r}: no user info, query or fragment allowed")

    def client_config(self, path: str, *, ca_bundle: bytes | None) -> dict[str, Any]:
        config: dict[str, Any]
        if self.service is not None:
            namespace, name = self.service
            config = {"service": {"namespace": namespace, "name": name, "path": path, "port": 443}}
        else:
            assert self.url is not None
            config = {"url": self.url.rstrip("/") + path}
        if ca_bundle is not None:
            config["caBundle"] = base64.b64encode(ca_bundle).decode("ascii")
        return config


def parse_service(value: str) -> tuple[str, str]:
    namespace, sep, name = value.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise errors.WebhookError(f"--service {value!r}: expected namespace/name")
    return namespace, name


def rules(policies: Iterable[registry.Policy], *, chain: str) -> list[dict[str, Any]]:
    """Rules listing, for each resource, exactly the operations some policy needs on it.

    Resources are grouped into one rule per (API group, version, operations): merging operations
    across resources would, for example, send every Pod DELETE to a fail-closed webhook because
    one policy cares about PersistentVolume deletes, and an outage would then block scale-downs.
    A validating group that checks Pods also gets ``pods/ephemeralcontainers``, as Pod Security
    admission's webhook registers it: ``kubectl debug`` adds containers through that subresource,
    which would otherwise bypass every container check (the engine evaluates it as a Pod update).
    """
    by_resource: dict[tuple[str, str, str], set[str]] = {}
    for policy in policies:
        for kind in policy.kinds:
            if kind not in RESOURCES:
                raise errors.WebhookError(
                    f"policy {policy.id!r} applies to kind {kind!r}, which webhook.registration.RESOURCES "
                    "does not map to a resource; add it there"
                )
            api_group, version, resource = RESOURCES[kind]
            by_resource.setdefault((api_group, version, resource), set()).update(policy.operations)
            if kind == "Pod" and chain == "validating":
                by_resource.setdefault((api_group, version, "pods/ephemeralcontainers"), set()).update(
                    op for op in policy.operations if op in ("CREATE", "UPDATE")
                )
    grouped: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for (api_group, version, resource), operations in by_resource.items():
        ordered = tuple(op for op in OPERATION_ORDER if op in operations)
        grouped.setdefault((api_group, version, ordered), []).append(resource)
    return [
        {
            "apiGroups": [api_group],
            "apiVersions": [version],
            "operations": list(operations),
            "resources": sorted(resources),
            "scope": "*",
        }
        for (api_group, version, operations), resources in sorted(grouped.items())
    ]


# Writes the control plane makes to cluster-wide RBAC and storage objects (the API server
# reconciling bootstrap roles at start-up, the ClusterRole aggregation controller, PV binding)
# must not wait on this webhook: while it is down, a fail-closed webhook would stall them. Pods
# are not skipped: controllers create Pods for users, and those are what Pod Security polices.
CONTROL_PLANE_CONDITION = {
    "name": "skip-control-plane-rbac-and-storage-writes",
    "expression": (
        "!(request.resource.group in ['rbac.authorization.k8s.io', 'storage.k8s.io'] || "
        "request.resource.resource in ['persistentvolumes', 'persistentvolumeclaims']) || "
        "!(request.userInfo.username in ['system:apiserver', 'system:kube-controller-manager', "
        "'system:kube-scheduler'] || request.userInfo.username.startsWith('system:serviceaccount:kube-system:'))"
    ),
}
CONTROL_PLANE_RESOURCES = {"roles", "rolebindings", "clusterroles", "clusterrolebindings", "storageclasses",
                           "persistentvolumes", "persistentvolumeclaims"}


def namespace_selector(namespace: str) -> dict[str, Any]:
    excluded = sorted({*SYSTEM_NAMESPACES, namespace})
    return {"matchExpressions": [{"key": NAMESPACE_LABEL, "operator": "NotIn", "values": excluded}]}


def webhook(
    group: registry.Group,
    policies: Sequence[registry.Policy],
    *,
    target: Target,
    ca_bundle: bytes | None,
    options: Options,
) -> dict[str, Any]:
    """The webhook entry for one group."""
    enforcing = group.chain == "validating" and group.name not in options.advisory_groups
    prefix = "/validate" if group.chain == "validating" else "/mutate"
    entry: dict[str, Any] = {
        "name": f"{group.name}.{WEBHOOK_DOMAIN}",
        "admissionReviewVersions": ["v1"],
        "clientConfig": target.client_config(f"{prefix}/{group.name}", ca_bundle=ca_bundle),
        "failurePolicy": options.failure_policy_enforcing if enforcing else options.failure_policy_advisory,
        "matchPolicy": "Equivalent",
        "namespaceSelector": namespace_selector(options.namespace),
        # Matches every object on purpose: a label opt-out would let any workload author skip
        # enforcement. Opt-outs live in the policy files' exemptions, where they are reviewed.
        "objectSelector": {},
        "rules": rules(policies, chain=group.chain),
        "sideEffects": "None",
        "timeoutSeconds": options.timeout_enforcing if enforcing else options.timeout_advisory,
    }
    if any(CONTROL_PLANE_RESOURCES & set(rule["resources"]) for rule in entry["rules"]):
        entry["matchConditions"] = [dict(CONTROL_PLANE_CONDITION)]
    if group.chain == "mutating":
        # Called again if a later mutating webhook changed the object (e.g. added a container),
        # so injected containers get defaults too. Our mutations are idempotent, as required.
        entry["reinvocationPolicy"] = "IfNeeded"
    return entry


@dataclasses.dataclass(frozen=True, slots=True)
class CelPolicies:
    """What registration needs of the ValidatingAdmissionPolicies in the policy files."""

    rules: tuple[Mapping[str, Any], ...]
    """Their ``matchConstraints.resourceRules`` (without ``resourceNames``, which webhook rules do
    not have: the server checks names, exclusions and selectors itself)."""
    fail_closed: bool
    """Whether any of them has ``failurePolicy: Fail``."""


CEL_GROUP = "cel"


def cel_webhook(cel: CelPolicies, *, target: Target, ca_bundle: bytes | None, options: Options) -> dict[str, Any]:
    """The webhook for the ``cel`` group: called for every resource some policy's matchConstraints
    name; fail-closed when a policy is (and the group is not registered advisory)."""
    enforcing = cel.fail_closed and CEL_GROUP not in options.advisory_groups
    unique: list[dict[str, Any]] = []
    for rule in cel.rules:
        entry = {
            "apiGroups": list(rule.get("apiGroups") or []),
            "apiVersions": list(rule.get("apiVersions") or []),
            "operations": list(rule.get("operations") or []),
            "resources": list(rule.get("resources") or []),
            "scope": rule.get("scope") or "*",
        }
        if entry not in unique:
            unique.append(entry)
    entry = {
        "name": f"{CEL_GROUP}.{WEBHOOK_DOMAIN}",
        "admissionReviewVersions": ["v1"],
        "clientConfig": target.client_config(f"/validate/{CEL_GROUP}", ca_bundle=ca_bundle),
        "failurePolicy": options.failure_policy_enforcing if enforcing else options.failure_policy_advisory,
        "matchPolicy": "Equivalent",
        "namespaceSelector": namespace_selector(options.namespace),
        "objectSelector": {},
        "rules": unique,
        "sideEffects": "None",
        "timeoutSeconds": options.timeout_enforcing if enforcing else options.timeout_advisory,
    }
    return entry


def configurations(
    catalog: registry.Registry,
    *,
    target: Target,
    ca_bundle: bytes | None,
    options: Options = Options(),
    cel: CelPolicies | None = None,
) -> list[dict[str, Any]]:
    """``[MutatingWebhookConfiguration, ValidatingWebhookConfiguration]`` for every group with policies.

    Mutating webhooks are listed in the groups' order: the API server calls a configuration's
    mutating webhooks in list order, and sidecars must come before the defaults applied to them.
    With ``cel`` (admission policies in the policy files), the ``cel`` webhook comes first among
    the validating ones, as the API server runs admission policies before validating webhooks.
    """
    known = {g.name for g in catalog.groups.values() if g.chain == "validating"} | ({CEL_GROUP} if cel else set())
    unknown = options.advisory_groups - known
    if unknown:
        raise errors.WebhookError(f"--advisory-group: no validating group named {', '.join(sorted(unknown))}")
    result = []
    for kind, chain in (
        ("MutatingWebhookConfiguration", "mutating"),
        ("ValidatingWebhookConfiguration", "validating"),
    ):
        groups = sorted(
            (g for g in catalog.groups.values() if g.chain == chain), key=lambda g: (g.order, g.name)
        )
        hooks = [
            webhook(group, policies, target=target, ca_bundle=ca_bundle, options=options)
            for group in groups
            if (policies := catalog.in_group(group.name))
        ]
        if chain == "validating" and cel is not None and cel.rules:
            hooks.insert(0, cel_webhook(cel, target=target, ca_bundle=ca_bundle, options=options))
        result.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": CONFIG_NAME, "labels": dict(LABELS)},
                "webhooks": hooks,
            }
        )
    return result


def to_yaml(configs: Sequence[Mapping[str, Any]]) -> str:
    """A multi-document YAML stream, as ``kubectl apply -f -`` reads it."""
    return yaml.safe_dump_all(list(configs), sort_keys=False, default_flow_style=False)


def _api(api: Any | None) -> Any:
    if api is not None:
        return api
    from kubernetes import client

    from webhook import cluster

    return client.AdmissionregistrationV1Api(cluster.load_credentials())


_METHODS = {
    "MutatingWebhookConfiguration": "mutating_webhook_configuration",
    "ValidatingWebhookConfiguration": "validating_webhook_configuration",
}


def apply(configs: Sequence[Mapping[str, Any]], *, api: Any | None = None) -> list[str]:
    """Create each configuration, or replace it if it exists; ``"<Kind>/<name> created|updated"`` each.

    Replacing with an identical body changes nothing on the server (no new resourceVersion), so
    running ``register`` twice is harmless. A conflicting concurrent write (409) is retried.
    """
    from kubernetes.client.exceptions import ApiException

    api = _api(api)
    done = []
    for config in configs:
        suffix = _METHODS[config["kind"]]
        name = config["metadata"]["name"]
        for attempt in range(3):
            try:
                existing = getattr(api, f"read_{suffix}")(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise _cluster_error(exc, f"read {config['kind']}/{name}") from None
                try:
                    getattr(api, f"create_{suffix}")(body=dict(config))
                except ApiException as create_exc:
                    if create_exc.status == 409 and attempt < 2:  # created meanwhile: update it instead
                        continue
                    raise _cluster_error(create_exc, f"create {config['kind']}/{name}") from None
                done.append(f"{config['kind']}/{name} created")
                break
            body = {
                **config,
                "metadata": {**config["metadata"], "resourceVersion": existing.metadata.resource_version},
            }
            try:
                getattr(api, f"replace_{suffix}")(name, body=body)
            except ApiException as exc:
                if exc.status == 409 and attempt < 2:  # changed since we read it: read again
                    continue
                raise _cluster_error(exc, f"replace {config['kind']}/{name}") from None
            done.append(f"{config['kind']}/{name} updated")
            break
    return done


def delete(*, name: str = CONFIG_NAME, api: Any | None = None) -> list[str]:
    """Delete both configurations; one that is already gone is reported, not an error."""
    from kubernetes.client.exceptions import ApiException

    api = _api(api)
    done = []
    for kind, suffix in _METHODS.items():
        try:
            getattr(api, f"delete_{suffix}")(name)
        except ApiException as exc:
            if exc.status != 404:
                raise _cluster_error(exc, f"delete {kind}/{name}") from None
            done.append(f"{kind}/{name} absent")
        else:
            done.append(f"{kind}/{name} deleted")
    return done


def _cluster_error(exc: Any, action: str) -> errors.ClusterUnavailable:
    return errors.ClusterUnavailable(f"could not {action}: HTTP {exc.status} {exc.reason}")
