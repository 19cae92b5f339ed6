"""Which requests a policy and its binding see (``pkg/admission/plugin/policy/matching``).

In the API server's order: namespaceSelector, objectSelector, excludeResourceRules, resourceRules
(with ``resourceNames``). A policy applies when its ``matchConstraints`` match and, if the binding
has ``matchResources``, those match too.

Differences from the API server, both from having no live cluster view:

* namespace labels come from the watch-fed namespace cache (or ``review --namespace-label``); when
  they are unknown, a non-empty ``namespaceSelector`` does not match (the API server would look the
  namespace up);
* ``matchPolicy: Equivalent`` matches like ``Exact``: the API server's table of equivalent
  resources (the same kind served under an older group or version) is not available offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.cel import documents
from webhook.policy import model, scope


def _labels(obj: Any) -> dict[str, str] | None:
    if not isinstance(obj, dict):
        return None
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _selector_matches(selector: documents.Selector, labels: Mapping[str, str]) -> bool:
    return scope.requirements_hold(selector.match_labels, selector.match_expressions, labels)


def _is_namespace(ctx: model.ReviewContext) -> bool:
    return ctx.group == "" and ctx.version == "v1" and ctx.resource == "namespaces"


def namespace_matches(selector: documents.Selector, ctx: model.ReviewContext, obj: Any) -> bool:
    if not ctx.namespace and ctx.resource != "namespaces":
        return True  # cluster-scoped objects other than namespaces always match
    if selector.empty:
        return True
    if ctx.resource == "namespaces" and not ctx.sub_resource and ctx.operation in ("CREATE", "UPDATE"):
        labels: Mapping[str, str] | None = _labels(obj) or {}
    elif ctx.resource == "namespaces" and ctx.old_object is not None:
        labels = _labels(ctx.old_object) or {}
    else:
        labels = ctx.namespace_labels
    return labels is not None and _selector_matches(selector, labels)


def object_matches(selector: documents.Selector, obj: Any, old: Any) -> bool:
    """The object *or* the old object must match (a DELETE is matched on what is deleted)."""
    if selector.empty:
        return True
    return any(labels is not None and _selector_matches(selector, labels) for labels in (_labels(obj), _labels(old)))


def rule_matches(rule: documents.Rule, ctx: model.ReviewContext) -> bool:
    """``rules.Matcher.Matches``: scope, operation, group, version, resource/subresource, name."""
    namespace_kind = _is_namespace(ctx)
    if rule.scope == "Namespaced" and (namespace_kind or not ctx.namespace):
        return False
    if rule.scope == "Cluster" and not (namespace_kind or not ctx.namespace):
        return False
    if "*" not in rule.operations and ctx.operation not in rule.operations:
        return False
    if "*" not in rule.api_groups and ctx.group not in rule.api_groups:
        return False
    if "*" not in rule.api_versions and ctx.version not in rule.api_versions:
        return False
    if rule.resource_names and ctx.name not in rule.resource_names:
        return False
    for entry in rule.resources:
        resource, _, sub = entry.partition("/")
        # "pods" does not match pods/status; "*" matches only requests without a subresource.
        if resource in ("*", ctx.resource) and sub in ("*", ctx.sub_resource):
            return True
    return False


def rules_match(match: documents.MatchResources, ctx: model.ReviewContext, *, constraints: bool) -> bool:
    """The request-only part: excludeResourceRules, then resourceRules. ``constraints``: a
    policy's matchConstraints, whose empty ``resourceRules`` never happen (validation requires
    them); a binding's empty rules mean "whatever the policy matches"."""
    if any(rule_matches(rule, ctx) for rule in match.exclude_resource_rules):
        return False
    if not match.resource_rules:
        return not constraints
    return any(rule_matches(rule, ctx) for rule in match.resource_rules)


def selectors_match(match: documents.MatchResources, ctx: model.ReviewContext, obj: Any) -> bool:
    """The parts that read objects and labels: namespaceSelector, then objectSelector."""
    return namespace_matches(match.namespace_selector, ctx, obj) and object_matches(
        match.object_selector, obj, ctx.old_object
    )


def matches(match: documents.MatchResources, ctx: model.ReviewContext, obj: Any, *, constraints: bool) -> bool:
    """Whether ``match`` selects the request (selectors, then rules, as the API server orders them;
    the result does not depend on the order)."""
    return selectors_match(match, ctx, obj) and rules_match(match, ctx, constraints=constraints)
