"""Does a policy apply to this request? Scopes (all must match) and exemptions (any exempts).

Globs use ``fnmatch`` case-sensitive matching (``team-*``, ``ci/*``), each list compiled once into
one regex. Each part comes in a request-only and an object-reading half, so the engine can decide
the first once per review and re-decide only the second after a mutation; the access-review
exemption, which may cost a SubjectAccessReview, is its own function and is asked last.
Label selectors follow the Kubernetes ``LabelSelector`` semantics. A ``namespaceSelector`` needs
the namespace's labels: when they are unknown (no cluster), the selector never matches — a scope
with one does not apply, an exemption with one does not exempt — and the server says so at start.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from webhook.policy import model, settings

_EMPTY: Mapping[str, str] = {}


def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for a whole list of globs: one C-level match per review instead of one per
    pattern; ``None`` when no pattern has a wildcard (``*``, ``?``, ``[``), as the default
    ``excludeNamespaces`` do: equality, which :func:`glob_match` tries first, then decides. Kept
    per list of patterns in a plain dict (the lists come from policy files: a few per set)."""
    try:
        return _GLOBS[patterns]
    except KeyError:
        pass
    compiled = (
        re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
        if any(c in p for p in patterns for c in "*?[")
        else None
    )
    if len(_GLOBS) >= 1024:
        _GLOBS.clear()
    _GLOBS[patterns] = compiled
    return compiled


_GLOBS: dict[tuple[str, ...], re.Pattern[str] | None] = {}


def glob_match(value: str, patterns: Iterable[str]) -> bool:
    """Whether ``value`` matches any of the globs (case-sensitive, the whole value)."""
    key = patterns if isinstance(patterns, tuple) else tuple(patterns)
    if not key:
        return False
    # Equality first: a literal name containing ``[`` still matches itself.
    if value in key:
        return True
    compiled = _compiled(key)
    return compiled is not None and compiled.match(value) is not None


def selector_matches(selector: settings.LabelSelector, labels: Mapping[str, str]) -> bool:
    return requirements_hold(selector.matchLabels, selector.matchExpressions, labels)


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key operator values`` term of a label selector, as :func:`requirements_hold` reads it
    (the CEL documents' ``matchExpressions`` and the audit's ``-l`` selectors both build these)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


def requirements_hold(match_labels: Mapping[str, str], expressions: Iterable[Any], labels: Mapping[str, str]) -> bool:
    """``LabelSelector`` semantics: every label pair and every expression (``key``, ``operator``,
    ``values``) must hold. Shared with the API-server emulator, which reads selectors from YAML."""
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for req in expressions:
        present = req.key in labels
        if req.operator == "In" and (not present or labels[req.key] not in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def labels_of(obj: Any) -> Mapping[str, str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else _EMPTY


def annotations_of(obj: Any) -> Mapping[str, str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else _EMPTY


def request_in_scope(scope: settings.Scope, ctx: model.ReviewContext) -> bool:
    """The parts of a scope that depend on the request alone (namespace name and labels)."""
    namespace = ctx.namespace
    if scope.excludeNamespaces and namespace and glob_match(namespace, scope.excludeNamespaces):
        return False
    if scope.namespaces and not (namespace and glob_match(namespace, scope.namespaces)):
        return False
    return scope.namespaceSelector is None or (
        ctx.namespace_labels is not None and selector_matches(scope.namespaceSelector, ctx.namespace_labels)
    )


def object_in_scope(scope: settings.Scope, obj: Any) -> bool:
    """The part of a scope that reads the object (its labels)."""
    return scope.objectSelector is None or selector_matches(scope.objectSelector, labels_of(obj))


def exempt_request(exemptions: settings.Exemptions, ctx: model.ReviewContext) -> bool:
    """Exemptions the request alone decides, cheaply: namespace and requester."""
    if exemptions.namespaces and ctx.namespace and glob_match(ctx.namespace, exemptions.namespaces):
        return True
    if (
        exemptions.namespaceSelector is not None
        and ctx.namespace_labels is not None
        and selector_matches(exemptions.namespaceSelector, ctx.namespace_labels)
    ):
        return True
    if exemptions.users and glob_match(ctx.username, exemptions.users):
        return True
    if exemptions.groups and any(glob_match(g, exemptions.groups) for g in ctx.user_groups):
        return True
    if exemptions.serviceAccounts:
        account = ctx.service_account
        if account is not None and glob_match(account, exemptions.serviceAccounts):
            return True
    return False


def exempt_by_access_review(exemptions: settings.Exemptions, ctx: model.ReviewContext) -> bool:
    """The access-review exemption, asked last: a cache miss starts a SubjectAccessReview, which
    a request already settled by the cheaper parts must not cost."""
    review = exemptions.accessReview
    if review is not None:
        answer = None
        if ctx.authorizer is not None:
            answer = ctx.authorizer.allowed(
                user=ctx.username,
                groups=ctx.user_groups,
                verb=review.verb,
                group=review.group,
                resource=review.resource,
                name=review.name,
                namespace=ctx.namespace,
            )
        if answer is None:
            answer = review.whenUnknown == "exempt"
        if answer:
            return True
    return False


def exempt_object(exemptions: settings.Exemptions, obj: Any, pod: model.PodTarget | None) -> bool:
    """Exemptions that read the object: its labels, annotations (or its pod template's), runtime class."""
    if exemptions.objectLabels:
        labels = labels_of(obj)
        if any(labels.get(k) == v for k, v in exemptions.objectLabels.items()):
            return True
    if exemptions.annotations:
        for found in (annotations_of(obj), pod.annotations if pod is not None else _EMPTY):
            if any(found.get(k) == v for k, v in exemptions.annotations.items()):
                return True
    if exemptions.runtimeClassNames and pod is not None:
        runtime_class = pod.spec.get("runtimeClassName")
        if isinstance(runtime_class, str) and runtime_class in exemptions.runtimeClassNames:
            return True
    return False


def opted_out(annotation: str | None, obj: Any, pod: model.PodTarget | None) -> bool:
    """``annotation: "false"`` (or ``disabled``) on the object or its pod template opts it out."""
    if not annotation:
        return False
    for found in (annotations_of(obj), pod.annotations if pod is not None else _EMPTY):
        value = found.get(annotation)
        if isinstance(value, str) and value.strip().lower() in ("false", "disabled", "no", "off"):
            return True
    return False
