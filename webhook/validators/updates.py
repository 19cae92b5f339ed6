"""Registering validator checks so that UPDATEs are judged only on what they change.

A policy added today must not block tomorrow's unrelated edit of an object that predates it
(relabelling a Deployment, removing a finalizer from a PersistentVolume): Pod Security admission
skips Pod updates that leave the spec alone (``isSignificantPodUpdate``), and we do the same for
pod checks; object checks report only findings the old object did not already have. Findings
are sorted so messages are stable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from webhook.policy import model, registry, workloads

Check = Callable[[Any, model.ReviewContext, Any], list[model.Violation]]


def sorted_findings(found: Iterable[model.Violation]) -> list[model.Violation]:
    return sorted(found, key=lambda v: (v.path, v.reason, v.detail))


def pod_spec_unchanged(pod: model.PodTarget, ctx: model.ReviewContext) -> bool:
    """An UPDATE whose pod spec (of the Pod, or of the workload's template) is what it was."""
    if ctx.operation != "UPDATE" or not isinstance(ctx.old_object, dict):
        return False
    old = workloads.pod_target(ctx.old_object, pod.kind)
    return old is not None and old.spec == pod.spec


def _named(check: Check, fn: Check) -> Check:
    """``check`` named and documented as ``fn``, with ``__wrapped__`` (where ``registry.describe``
    finds the docstring when ``-OO`` strips it)."""
    return functools.update_wrapper(check, fn)


def object_check(
    group: str,
    policy_id: str,
    *,
    kinds: Iterable[str],
    order: int,
    operations: Iterable[str] = ("CREATE", "UPDATE"),
) -> Callable[[Check], Check]:
    """Register ``fn`` as ``<group>.<policy_id>``: sorted findings, on UPDATE only the new ones."""

    def decorate(fn: Check) -> Check:
        def check(obj: Any, ctx: model.ReviewContext, params: Any) -> list[model.Violation]:
            found = fn(obj, ctx, params)
            if found and ctx.operation == "UPDATE" and isinstance(ctx.old_object, dict):
                before = {(v.reason, v.detail, v.path) for v in fn(ctx.old_object, ctx, params)}
                found = [v for v in found if (v.reason, v.detail, v.path) not in before]
            return sorted_findings(found) if len(found) > 1 else found

        registry.check(f"{group}.{policy_id}", group=group, kinds=kinds, operations=operations, order=order)(
            _named(check, fn)
        )
        return check

    return decorate


def pod_check(group: str, policy_id: str, *, order: int) -> Callable[[Check], Check]:
    """Register ``fn`` as ``<group>.<policy_id>`` on pods and templates: sorted findings, skipped
    when an UPDATE keeps the pod spec."""

    def decorate(fn: Check) -> Check:
        def check(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> list[model.Violation]:
            # The operation test first and no sort of an empty list: this wrapper runs for every
            # check on every Pod, and nearly all of them find nothing.
            if ctx.operation == "UPDATE" and pod_spec_unchanged(pod, ctx):
                return []
            found = fn(pod, ctx, params)
            return sorted_findings(found) if len(found) > 1 else found

        registry.check(f"{group}.{policy_id}", group=group, pod_spec=True, order=order)(_named(check, fn))
        return check

    return decorate
