"""Which webhooks a request calls: ``generic.Webhook.ShouldCallHook`` and its predicates.

In the API server's order: namespaceSelector (predicates/namespace), objectSelector
(predicates/object), rules (predicates/rules), then matchConditions. A webhook that a selector or
rule excludes is skipped silently; a matchCondition that fails to evaluate follows failurePolicy
(see :mod:`webhook.emulator.conditions`). Requests for webhook configurations themselves never
reach webhooks (``IsExemptAdmissionConfigurationResource``), so a webhook cannot lock itself in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from webhook.emulator import attributes, conditions, config, texts
from webhook.policy import scope

EXEMPT_KINDS = frozenset(
    {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    call: bool
    reason: str = ""
    """Why the webhook is skipped (for the report); empty when it is called."""
    error: texts.Status | None = None
    """Set when deciding failed and the whole request must fail (a matchCondition error under Fail)."""


def exempt(attrs: attributes.Attributes) -> bool:
    return attrs.group == "admissionregistration.k8s.io" and attrs.kind in EXEMPT_KINDS


def _exact_or_wildcard(items: tuple[str, ...], requested: str) -> bool:
    return "*" in items or requested in items


def rule_matches(rule: config.Rule, attrs: attributes.Attributes) -> bool:
    """``rules.Matcher.Matches``: scope, operation, group, version, resource/subresource."""
    is_namespace = attrs.group == "" and attrs.version == "v1" and attrs.resource == "namespaces"
    if rule.scope == "Namespaced" and (is_namespace or not attrs.namespace):
        return False
    if rule.scope == "Cluster" and not (is_namespace or not attrs.namespace):
        return False
    if "*" not in rule.operations and attrs.operation not in rule.operations:
        return False
    if not _exact_or_wildcard(rule.api_groups, attrs.group):
        return False
    if not _exact_or_wildcard(rule.api_versions, attrs.version):
        return False
    for entry in rule.resources:
        res, _, sub = entry.partition("/")
        if res in ("*", attrs.resource) and sub in ("*", attrs.subresource):
            return True
    return False


def selector_matches(selector: config.LabelSelector, labels: Mapping[str, str]) -> bool:
    """``metav1.LabelSelectorAsSelector(...).Matches``: every requirement must hold."""
    return scope.requirements_hold(selector.match_labels, selector.match_expressions, labels)


def _labels_of(obj: dict[str, Any] | None) -> dict[str, str] | None:
    if obj is None:
        return None
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def namespace_labels(attrs: attributes.Attributes) -> dict[str, str]:
    """``GetNamespaceLabels``: a namespace being created or updated is matched on its own new labels;
    anything else on the labels of the namespace as stored (for a namespace: its old object)."""
    if attrs.resource == "namespaces" and not attrs.subresource:
        if attrs.operation in ("CREATE", "UPDATE"):
            return _labels_of(attrs.object) or {}
        if attrs.old_object is not None:
            return _labels_of(attrs.old_object) or {}
    return attrs.namespace_labels


def namespace_matches(selector: config.LabelSelector, attrs: attributes.Attributes) -> bool:
    # Cluster-scoped requests other than namespaces are never exempted by a namespaceSelector.
    if not attrs.namespace and attrs.resource != "namespaces":
        return True
    if selector.empty:
        return True
    return selector_matches(selector, namespace_labels(attrs))


def object_matches(selector: config.LabelSelector, attrs: attributes.Attributes) -> bool:
    """The object *or* the old object must match: a DELETE is matched on the object being deleted."""
    if selector.empty:
        return True
    return any(
        labels is not None and selector_matches(selector, labels)
        for labels in (_labels_of(attrs.object), _labels_of(attrs.old_object))
    )


def should_call(hook: config.Hook, attrs: attributes.Attributes) -> Decision:
    webhook = hook.webhook
    if not namespace_matches(webhook.namespace_selector, attrs):
        return Decision(call=False, reason="namespaceSelector does not match the namespace's labels")
    if not object_matches(webhook.object_selector, attrs):
        return Decision(call=False, reason="objectSelector matches neither object nor oldObject")
    if not any(rule_matches(rule, attrs) for rule in webhook.rules):
        what = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        return Decision(call=False, reason=f"no rule matches {attrs.operation} {what} ({attrs.api_version})")
    if webhook.match_conditions:
        result = conditions.match(
            webhook.match_conditions, attrs.cel_variables(), failure_policy=webhook.failure_policy
        )
        if result.error is not None:
            return Decision(
                call=False,
                reason="matchConditions failed to evaluate",
                error=texts.forbidden(
                    group=attrs.group,
                    resource=attrs.resource,
                    name=attrs.name,
                    message=result.error,
                ),
            )
        if result.ignored_error is not None:
            return Decision(
                call=False,
                reason=f"matchConditions error ignored (failurePolicy Ignore): {result.ignored_error}",
            )
        if not result.matches:
            return Decision(call=False, reason=f"matchCondition {result.failed_condition!r} is false")
    return Decision(call=True)
