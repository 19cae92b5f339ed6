"""Which requests a policy and its binding see (``pkg/admission/plugin/policy/matching``).

In the API server's order: namespaceSelector, objectSelector, excludeResourceRules, resourceRules
(with ``resourceNames``); the predicates themselves are :mod:`webhook.policy.predicates`, shared
with the webhook emulator. A policy applies when its ``matchConstraints`` match and, if the binding
has ``matchResources``, those match too.

Differences from the API server, both from having no live cluster view:

* namespace labels come from the watch-fed namespace cache (or ``review --namespace-label``); when
  they are unknown, a non-empty ``namespaceSelector`` does not match (the API server would look the
  namespace up);
* ``matchPolicy``: the API server matches the request as it was made (``requestResource``), and
  with ``Equivalent`` also each equivalent resource in its table (the same objects served under
  another version or group). Without that table, the one equivalent known here is the version the
  API server sent the object in (``resource``, which differs from ``requestResource`` when it
  converted the object for this webhook). A policy matching another equivalent only would need the
  object in a version we are not sent; registering the policy's own rules (``register``) makes the
  API server send that version.
"""

from __future__ import annotations

from typing import Any

from webhook.cel import documents
from webhook.policy import model, predicates


def namespace_matches(selector: documents.Selector, ctx: model.ReviewContext, obj: Any) -> bool:
    return predicates.namespace_matches(
        selector, namespace=ctx.namespace, resource=ctx.resource, subresource=ctx.sub_resource,
        operation=ctx.operation, obj=obj, old=ctx.old_object, stored=ctx.namespace_labels,
    )


Resource = tuple[str, str, str, str]
"""(group, version, resource, subresource)."""


def request_resources(ctx: model.ReviewContext) -> tuple[Resource, Resource | None]:
    """The resource as the request was made, and the one the object was sent in when the API server
    converted it (``None`` when it did not, or when the review has no ``requestResource``)."""
    sent = (ctx.group, ctx.version, ctx.resource, ctx.sub_resource)
    made = ctx.request_resource()
    return (sent, None) if made is None or made == sent else (made, sent)


def rule_matches(rule: documents.Rule, ctx: model.ReviewContext, resource: Resource | None = None) -> bool:
    """``rules.Matcher.Matches``, with the rule's ``resourceNames``, for ``resource`` (by default
    the one the object was sent in)."""
    group, version, name, sub_resource = resource or (ctx.group, ctx.version, ctx.resource, ctx.sub_resource)
    return predicates.rule_matches(
        rule, operation=ctx.operation, group=group, version=version, resource=name,
        subresource=sub_resource, namespace=ctx.namespace, name=ctx.name, resource_names=rule.resource_names,
    )


def rules_match(match: documents.MatchResources, ctx: model.ReviewContext, *, constraints: bool) -> bool:
    """The request-only part: excludeResourceRules, then resourceRules, each for the resource as
    requested and, with ``matchPolicy: Equivalent``, for the converted one (``matchesResourceRules``).
    ``constraints``: a policy's matchConstraints, whose empty ``resourceRules`` never happen
    (validation requires them); a binding's empty rules mean "whatever the policy matches"."""
    made, converted = request_resources(ctx)
    resources = (made,) if converted is None or match.match_policy != "Equivalent" else (made, converted)
    if any(rule_matches(rule, ctx, resource) for resource in resources for rule in match.exclude_resource_rules):
        return False
    if not match.resource_rules:
        return not constraints
    return any(rule_matches(rule, ctx, resource) for resource in resources for rule in match.resource_rules)


def selectors_match(match: documents.MatchResources, ctx: model.ReviewContext, obj: Any) -> bool:
    """The parts that read objects and labels: namespaceSelector, then objectSelector."""
    if match.any_object:
        return True
    return namespace_matches(match.namespace_selector, ctx, obj) and predicates.object_matches(
        match.object_selector, obj, ctx.old_object
    )


def matches(match: documents.MatchResources, ctx: model.ReviewContext, obj: Any, *, constraints: bool) -> bool:
    """Whether ``match`` selects the request (selectors, then rules, as the API server orders them;
    the result does not depend on the order)."""
    return selectors_match(match, ctx, obj) and rules_match(match, ctx, constraints=constraints)
