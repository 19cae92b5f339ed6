"""Which webhooks a request calls: ``generic.Webhook.ShouldCallHook`` and its predicates.

In the API server's order: namespaceSelector (predicates/namespace), objectSelector
(predicates/object), rules (predicates/rules), then matchConditions. A webhook that a selector or
rule excludes is skipped silently; a matchCondition that fails to evaluate follows failurePolicy
(see :mod:`webhook.emulator.conditions`). Requests for webhook configurations themselves never
reach webhooks (``IsExemptAdmissionConfigurationResource``), so a webhook cannot lock itself in.
"""

from __future__ import annotations

import dataclasses

from webhook.emulator import attributes, conditions, config, texts
from webhook.policy import predicates

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


def rule_matches(rule: config.Rule, attrs: attributes.Attributes) -> bool:
    """``rules.Matcher.Matches``: scope, operation, group, version, resource/subresource."""
    return predicates.rule_matches(
        rule, operation=attrs.operation, group=attrs.group, version=attrs.version, resource=attrs.resource,
        subresource=attrs.subresource, namespace=attrs.namespace,
    )


def namespace_matches(selector: config.LabelSelector, attrs: attributes.Attributes) -> bool:
    return predicates.namespace_matches(
        selector, namespace=attrs.namespace, resource=attrs.resource, subresource=attrs.subresource,
        operation=attrs.operation, obj=attrs.object, old=attrs.old_object, stored=attrs.namespace_labels,
    )


def object_matches(selector: config.LabelSelector, attrs: attributes.Attributes) -> bool:
    return predicates.object_matches(selector, attrs.object, attrs.old_object)


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
