"""The API server's request predicates, one copy for the two places that need them: which webhooks
a request calls (``pkg/admission/plugin/webhook/predicates``, :mod:`webhook.emulator.matching`) and
which admission policies and bindings see it (``pkg/admission/plugin/policy/matching``, which reuses
the same predicates; :mod:`webhook.cel.matching`).

Each takes the request's parts as plain values, so both callers' request types fit without a copy.
Rules and selectors are anything with the fields of a ``RuleWithOperations`` and a
``LabelSelector`` (the emulator reads them into pydantic models, admission policies into
dataclasses).

What no live cluster can give: the labels of the namespace as stored. The caller passes what it
knows (the namespace cache, ``review --namespace-label``) or ``None`` when it does not know them,
and then a non-empty ``namespaceSelector`` does not match. A DELETE of a namespace is matched on
the deleted object's labels, which are the stored ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from webhook.policy import scope


class Rule(Protocol):
    """A ``RuleWithOperations``: what it matches, ``"*"`` for any."""

    @property
    def operations(self) -> Sequence[str]: ...

    @property
    def api_groups(self) -> Sequence[str]: ...

    @property
    def api_versions(self) -> Sequence[str]: ...

    @property
    def resources(self) -> Sequence[str]: ...

    @property
    def scope(self) -> str: ...


class Selector(Protocol):
    """A ``metav1.LabelSelector``; an empty one matches everything."""

    @property
    def match_labels(self) -> Mapping[str, str]: ...

    @property
    def match_expressions(self) -> Sequence[Any]: ...

    @property
    def empty(self) -> bool: ...


def is_namespace(group: str, version: str, resource: str) -> bool:
    return group == "" and version == "v1" and resource == "namespaces"


def rule_matches(
    rule: Rule, *, operation: str, group: str, version: str, resource: str, subresource: str, namespace: str,
    name: str = "", resource_names: Sequence[str] = (),
) -> bool:
    """``rules.Matcher.Matches``: scope, operation, group, version, resource and subresource, and
    the names a policy rule lists (webhook rules have none)."""
    cluster_scoped = is_namespace(group, version, resource) or not namespace
    if rule.scope == "Namespaced" and cluster_scoped:
        return False
    if rule.scope == "Cluster" and not cluster_scoped:
        return False
    if "*" not in rule.operations and operation not in rule.operations:
        return False
    if "*" not in rule.api_groups and group not in rule.api_groups:
        return False
    if "*" not in rule.api_versions and version not in rule.api_versions:
        return False
    if resource_names and name not in resource_names:
        return False
    for entry in rule.resources:
        wanted, _, wanted_sub = entry.partition("/")
        # "pods" does not match pods/status; "*" matches only requests without a subresource.
        if wanted in ("*", resource) and wanted_sub in ("*", subresource):
            return True
    return False


def labels_of(obj: Any) -> dict[str, str] | None:
    """``metadata.labels`` of ``obj`` (values as text; ``{}`` without any); ``None`` when ``obj``
    is not an object (no old object on CREATE)."""
    if not isinstance(obj, dict):
        return None
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def namespace_labels(
    resource: str, subresource: str, operation: str, obj: Any, old: Any, stored: Mapping[str, str] | None
) -> Mapping[str, str] | None:
    """``GetNamespaceLabels``: a namespace being created or updated is matched on its own new
    labels, one being deleted on the labels it had; any other request on the stored labels of its
    namespace (``stored``; ``None`` when unknown)."""
    if resource == "namespaces" and not subresource:
        if operation in ("CREATE", "UPDATE"):
            return labels_of(obj) or {}
        if old is not None:
            return labels_of(old) or {}
    return stored


def namespace_matches(
    selector: Selector, *, namespace: str, resource: str, subresource: str, operation: str, obj: Any, old: Any,
    stored: Mapping[str, str] | None,
) -> bool:
    """A ``namespaceSelector``; cluster-scoped requests other than for namespaces always match."""
    if not namespace and resource != "namespaces":
        return True
    if selector.empty:
        return True
    labels = namespace_labels(resource, subresource, operation, obj, old, stored)
    return labels is not None and scope.requirements_hold(selector.match_labels, selector.match_expressions, labels)


def object_matches(selector: Selector, obj: Any, old: Any) -> bool:
    """An ``objectSelector``: the object *or* the old object must match (a DELETE is matched on
    what is deleted)."""
    if selector.empty:
        return True
    for labels in (labels_of(obj), labels_of(old)):
        if labels is not None and scope.requirements_hold(selector.match_labels, selector.match_expressions, labels):
            return True
    return False
