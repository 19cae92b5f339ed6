"""Evaluating a pod (or a workload's pod template) and wording the outcome as Pod Security admission does.

Follows ``k8s.io/pod-security-admission/admission``: a Pod *update* is only re-evaluated when it
changes something the policy can see (``isSignificantPodUpdate``: container images, the set of
containers, the seccomp annotations); Pod subresources that cannot change the spec are ignored, and
so are all workload subresources. The messages are upstream's:
``violates PodSecurity "restricted:latest": reason (detail), ...`` when enforcing and
``would violate PodSecurity "restricted:v1.30": ...`` for warn and audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.policy import model, workloads
from webhook.validators.pod_security import base, checks, levels, seccomp

IGNORED_POD_SUBRESOURCES = frozenset(
    {"exec", "attach", "binding", "eviction", "log", "portforward", "proxy", "status"}
)
"""Upstream ``ignoredPodSubresources``; any other Pod subresource (``ephemeralcontainers``, ``resize``)
carries a Pod and is evaluated, so an unknown subresource fails safe."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _container_changed(
    new: Any, old: Any, annotations: Mapping[str, Any], old_annotations: Mapping[str, Any]
) -> bool:
    """Upstream ``isSignificantContainerUpdate``: a new image or a changed container seccomp annotation."""
    new = new if isinstance(new, dict) else {}
    old = old if isinstance(old, dict) else {}
    if _text(new.get("image")) != _text(old.get("image")):
        return True
    key = seccomp.CONTAINER_ANNOTATION_PREFIX + base.name_of(new)
    return _text(annotations.get(key)) != _text(old_annotations.get(key))


def is_significant_pod_update(pod: Mapping[str, Any], old_pod: Mapping[str, Any]) -> bool:
    """Whether a Pod update must be evaluated (upstream ``isSignificantPodUpdate``).

    The API server only lets an existing Pod change its images, its ephemeral containers (through
    the ``ephemeralcontainers`` subresource) and a few annotations, so everything else the checks
    read is already admitted; skipping the rest keeps label or status updates of a running Pod
    working after a namespace tightens its level.
    """
    meta = base.as_dict(pod.get("metadata")) or {}
    old_meta = base.as_dict(old_pod.get("metadata")) or {}
    annotations, old_annotations = base.annotations_of(meta), base.annotations_of(old_meta)
    if _text(annotations.get(seccomp.POD_ANNOTATION)) != _text(old_annotations.get(seccomp.POD_ANNOTATION)):
        return True
    spec = base.as_dict(pod.get("spec")) or {}
    old_spec = base.as_dict(old_pod.get("spec")) or {}
    for field in ("containers", "initContainers"):
        new_list, old_list = _list(spec.get(field)), _list(old_spec.get(field))
        if len(new_list) != len(old_list):
            return True
        if any(
            _container_changed(n, o, annotations, old_annotations)
            for n, o in zip(new_list, old_list, strict=True)
        ):
            return True
    old_ephemeral = {
        base.name_of(c): c for c in _list(old_spec.get("ephemeralContainers")) if isinstance(c, dict)
    }
    for container in _list(spec.get("ephemeralContainers")):
        if not isinstance(container, dict):
            continue
        old = old_ephemeral.get(base.name_of(container))
        if old is None or _container_changed(container, old, annotations, old_annotations):
            return True
    return False


def skip_request(target: model.PodTarget, ctx: model.ReviewContext) -> bool:
    """Whether Pod Security admission would not evaluate this request at all."""
    if target.kind == "Pod":
        if ctx.sub_resource in IGNORED_POD_SUBRESOURCES:
            return True
        old = ctx.old_object
        return (
            ctx.operation == "UPDATE"
            and isinstance(old, dict)
            and not is_significant_pod_update(target.obj, old)
        )
    return bool(ctx.sub_resource)


def to_violation(result: base.Result, target: model.PodTarget | None = None) -> model.Violation:
    """A check result as a Violation, its path re-rooted into the pod template for workloads."""
    path = result.path
    if target is not None and target.is_template:
        if path.startswith("spec"):
            path = target.spec_path + path[4:]
        elif path.startswith("metadata"):
            path = target.meta_path + path[8:]
    return model.Violation(result.reason, result.detail, path, result.value, result.allowed)


def evaluate_target(
    target: model.PodTarget, *, level: str, version: str = levels.LATEST
) -> list[model.Violation]:
    """Every check in force at ``level``/``version`` run on ``target``, findings in upstream order."""
    meta = target.metadata or {}
    found: list[model.Violation] = []
    base.bind(target)
    for impl in checks.active(level, version).values():
        result = impl(meta, target.spec)
        if result is not None:
            found.append(to_violation(result, target))
    return found


def evaluate(pod: dict[str, Any], *, level: str, version: str = levels.LATEST) -> list[model.Violation]:
    """Pure evaluation of one object -- a Pod, or any workload carrying a pod template (by its ``kind``;
    a dict without ``kind`` is taken as a Pod). An object without a pod spec has nothing to violate.

    Raises ``ValueError`` for an unknown level or version.
    """
    kind = pod.get("kind") if isinstance(pod.get("kind"), str) else "Pod"
    target = workloads.pod_target(pod, str(kind))
    if target is None:
        checks.active(level, version)  # still reject a bad level/version
        return []
    return evaluate_target(target, level=level, version=version)


def render(violations: list[model.Violation], *, level: str, version: str, mode: model.Mode) -> str:
    """Upstream's message for ``violations`` (already in upstream order)."""
    prefix = "violates PodSecurity" if mode == "enforce" else "would violate PodSecurity"
    return f'{prefix} "{levels.label(level, version)}": ' + ", ".join(v.text() for v in violations)


def message(
    pod: dict[str, Any], *, level: str, version: str = levels.LATEST, mode: model.Mode = "enforce"
) -> str | None:
    """The admission message for ``pod`` at ``level``/``version``, or ``None`` when it is allowed."""
    found = evaluate(pod, level=level, version=version)
    return render(found, level=level, version=version, mode=mode) if found else None
