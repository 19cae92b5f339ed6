"""``review --explain``: for every policy, whether it ran on a request and, if not, why.

The answer to "why was this allowed?". It re-asks, one field at a time, the questions the engine
asks in one go (:mod:`webhook.policy.scope`), so it can name the rule that decided: the group's or
the policy's mode, the kinds and operations a policy is for, the scope (``namespaces``,
``excludeNamespaces``, ``namespaceSelector``, ``objectSelector``), the exemption that matched, a
mutating group's opt-out annotation. Policies that ran say what they found. Admission policies
(CEL) are listed by policy and binding with whether their rules matched the request.

Read-only over a compiled :class:`webhook.engine.PolicySet`: nothing here is on the request path.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from webhook import engine
from webhook.cel import matching as cel_matching
from webhook.policy import model, scope, workloads
from webhook.policy import settings as policy_settings


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    policy: str
    mode: str
    status: str
    """``ran``, ``skipped`` or ``off``."""
    why: str


def _scope_reason(settings: policy_settings.GroupSettings, ctx: model.ReviewContext, obj: Any) -> str | None:
    where = settings.scope
    namespace = ctx.namespace
    if where.excludeNamespaces and namespace and scope.glob_match(namespace, where.excludeNamespaces):
        return f"out of scope: namespace {namespace!r} is in scope.excludeNamespaces"
    if where.namespaces and not (namespace and scope.glob_match(namespace, where.namespaces)):
        return f"out of scope: namespace {namespace!r} is not in scope.namespaces"
    if where.namespaceSelector is not None:
        if ctx.namespace_labels is None:
            return "out of scope: scope.namespaceSelector needs the namespace's labels, which are unknown"
        if not scope.selector_matches(where.namespaceSelector, ctx.namespace_labels):
            return "out of scope: the namespace's labels do not match scope.namespaceSelector"
    if not scope.object_in_scope(where, obj):
        return "out of scope: the object's labels do not match scope.objectSelector"
    return None


def _exemption_reason(
    exemptions: policy_settings.Exemptions, ctx: model.ReviewContext, obj: Any, pod: model.PodTarget | None,
    where: str,
) -> str | None:
    if exemptions.namespaces and ctx.namespace and scope.glob_match(ctx.namespace, exemptions.namespaces):
        return f"exempt: namespace {ctx.namespace!r} matches {where}.namespaces"
    if (exemptions.namespaceSelector is not None and ctx.namespace_labels is not None
            and scope.selector_matches(exemptions.namespaceSelector, ctx.namespace_labels)):
        return f"exempt: the namespace's labels match {where}.namespaceSelector"
    if exemptions.users and scope.glob_match(ctx.username, exemptions.users):
        return f"exempt: user {ctx.username!r} matches {where}.users"
    for group in ctx.user_groups:
        if exemptions.groups and scope.glob_match(group, exemptions.groups):
            return f"exempt: group {group!r} matches {where}.groups"
    account = ctx.service_account
    if exemptions.serviceAccounts and account is not None and scope.glob_match(account, exemptions.serviceAccounts):
        return f"exempt: service account {account!r} matches {where}.serviceAccounts"
    if scope.exempt_object(exemptions, obj, pod):
        return f"exempt: the object's labels, annotations or runtime class match {where}"
    if exemptions.accessReview is not None and scope.exempt_by_access_review(exemptions, ctx):
        review = exemptions.accessReview
        how = "RBAC allows it" if ctx.authorizer is not None else f"whenUnknown: {review.whenUnknown}"
        return f"exempt: {where}.accessReview {review.name!r} ({how})"
    return None


def explain(policy_set: engine.PolicySet, obj: Any, ctx: model.ReviewContext, *, chain: model.Chain) -> list[Line]:
    """One line per policy of ``chain`` in the catalog, in group order, then the admission policies."""
    lines: list[Line] = []
    target_obj = ctx.old_object if ctx.operation == "DELETE" and chain == "validating" else obj
    pod = workloads.pod_target(target_obj, ctx.kind) if isinstance(target_obj, dict) else None
    instances: dict[str, list[engine.Instance]] = {}
    for inst in policy_set.instances:
        instances.setdefault(inst.policy.id, []).append(inst)
    for group_name in policy_set.groups(chain):
        if group_name == engine.CEL_GROUP:
            continue
        group = policy_set.catalog.groups[group_name]
        settings = policy_set.config.groups.get(group_name)
        for policy in policy_set.catalog.in_group(group_name):
            found = instances.get(policy.id)
            if not found or settings is None:
                mode = settings.mode if settings is not None else "off"
                why = (f"the group {group.key} is off" if mode == "off" else
                       f"{group.key}.policies[{policy.id}].mode is off, or it is not in force at these settings")
                lines.append(Line(policy.id, "off", "off", why))
                continue
            modes = "+".join(dict.fromkeys(i.mode for i in found))
            lines.append(_line(policy, found[0], modes, ctx, target_obj, pod))
    pairs: Any = (policy_set.cel if chain == "validating" else policy_set.cel_mutating).pairs
    for policy, binding in pairs:
        label = f"{policy.name} / {binding.name}"
        if not cel_matching.matches(policy.match_constraints, ctx, obj, constraints=True):
            lines.append(Line(label, "cel", "skipped", "the policy's matchConstraints do not match the request"))
        elif binding.match_resources is not None and not cel_matching.matches(
            binding.match_resources, ctx, obj, constraints=False
        ):
            lines.append(Line(label, "cel", "skipped", "the binding's matchResources do not match the request"))
        else:
            lines.append(Line(label, "cel", "ran", "matched (matchConditions, if any, decide further)"))
    return lines


def _line(
    policy: Any, inst: engine.Instance, modes: str, ctx: model.ReviewContext, obj: Any, pod: model.PodTarget | None,
) -> Line:
    if ctx.kind not in policy.kinds:
        return Line(policy.id, modes, "skipped", f"not for kind {ctx.kind}")
    if ctx.operation not in policy.operations:
        only = ", ".join(sorted(policy.operations))
        return Line(policy.id, modes, "skipped", f"not for {ctx.operation} (only {only})")
    if ctx.sub_resource and ctx.sub_resource != "ephemeralcontainers":
        return Line(policy.id, modes, "skipped", f"not for the {ctx.sub_resource} subresource")
    if policy.pod_spec and pod is None:
        return Line(policy.id, modes, "skipped", "the object has no pod spec")
    reason = _scope_reason(inst.settings, ctx, obj)
    if reason is None:
        for index, exemptions in enumerate(inst.exemptions):
            key = inst.group.key
            where = f"{key}.exemptions" if index == 0 else f"{key}.policies[{policy.id}].exemptions"
            reason = _exemption_reason(exemptions, ctx, obj, pod, where)
            if reason is not None:
                break
    if reason is None and isinstance(inst.settings, policy_settings.MutatingGroupSettings) and scope.opted_out(
        inst.settings.optOutAnnotation, obj, pod
    ):
        reason = f"opted out by the annotation {inst.settings.optOutAnnotation}"
    if reason is not None:
        return Line(policy.id, modes, "skipped", reason)
    return Line(policy.id, modes, "ran", _what_it_found(policy, inst, ctx, obj))


def _what_it_found(policy: Any, inst: engine.Instance, ctx: model.ReviewContext, obj: Any) -> str:
    """Run the policy once more on a copy: a check's findings, or whether a mutation changes anything."""
    import copy

    subject = copy.deepcopy(obj)
    pod = workloads.pod_target(subject, ctx.kind) if isinstance(subject, dict) else None
    target = pod if policy.pod_spec else subject
    try:
        found = policy.fn(target, ctx, inst.params)
    except Exception as exc:  # noqa: BLE001 - reported, as the engine reports a failing policy
        return f"raised {type(exc).__name__}: {exc}"
    if policy.chain == "mutating":
        return "changes the object" if subject != obj else "ran: nothing to change"
    if not found:
        return "ran: nothing found"
    first = found[0]
    more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return f"found: {first.reason}{more}"


def render(lines: list[Line]) -> list[str]:
    width = max((len(line.policy) for line in lines), default=0)
    return [f"    {line.status:<7} {line.policy:<{width}}  [{line.mode}]  {line.why}" for line in lines]
