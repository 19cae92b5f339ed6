"""Helpers for the mutating-policy tests: the default policy set, a run of the chain, object builders."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonpatch

from webhook import engine, patch, review
from webhook.mutators import defaults, downward_api, sidecars  # noqa: F401  (registers the groups)
from webhook.policy import files, model, registry, workloads

REPO = Path(__file__).resolve().parents[1]
POLICY_FILES = tuple(
    REPO / "policies" / name for name in ("50-defaults.yaml", "60-sidecars.yaml", "70-downward-api.yaml")
)
HEADER = "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n"


@functools.cache
def default_set() -> engine.PolicySet:
    """The shipped mutating policies (the three groups' files from policies/)."""
    return engine.PolicySet(files.load(list(POLICY_FILES)))


def policy_set(tmp_path: Path, body: str) -> engine.PolicySet:
    """A policy set from one YAML body (groups it does not mention are off)."""
    path = tmp_path / "policy.yaml"
    path.write_text(HEADER + body)
    return engine.PolicySet(files.load([path]))


def settings_of(group: str, body: dict[str, Any] | None = None) -> Any:
    """A group's settings model validated from ``body`` (``{}``: the model's own defaults)."""
    return registry.REGISTRY.groups[group].settings.model_validate(body or {})


def context(
    kind: str,
    *,
    operation: str = "CREATE",
    namespace: str = "default",
    namespace_labels: dict[str, str] | None = None,
) -> model.ReviewContext:
    return model.ReviewContext(
        operation=operation,
        kind=kind,
        namespace=namespace,  # type: ignore[arg-type]
        namespace_labels=namespace_labels,
    )


def mutate(ps: engine.PolicySet, obj: dict[str, Any], ctx: model.ReviewContext) -> review.Outcome:
    return engine.evaluate(ps, obj, ctx, chain="mutating")


def apply(obj: dict[str, Any], ops: list[patch.Op]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), ops) if ops else copy.deepcopy(obj)
    return result


def pod(
    spec: dict[str, Any], *, name: str = "web", namespace: str = "default", **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": spec,
    }


def deployment(
    spec: dict[str, Any], *, name: str = "web", template_meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    template: dict[str, Any] = {} if template_meta is None else {"metadata": template_meta}
    template["spec"] = spec
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": template},
    }


def cronjob(
    spec: dict[str, Any], *, name: str = "nightly", template_meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    template: dict[str, Any] = {} if template_meta is None else {"metadata": template_meta}
    template["spec"] = spec
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
    }


def run_one(
    fn: Any,
    obj: dict[str, Any],
    params: Any,
    *,
    kind: str | None = None,
    ctx: model.ReviewContext | None = None,
) -> tuple[list[patch.Op], dict[str, Any]]:
    """Call one mutation on a copy of ``obj``; return the patch and the mutated object.

    Also pins the two properties every mutation must have: the patch turns ``obj`` into the result,
    and running the mutation again on its own result changes nothing.
    """
    kind = kind or obj["kind"]
    ctx = ctx or context(kind)
    mutated = copy.deepcopy(obj)
    fn(workloads.pod_target(mutated, kind), ctx, params)
    ops = patch.diff(obj, mutated)
    assert apply(obj, ops) == mutated
    again = copy.deepcopy(mutated)
    fn(workloads.pod_target(again, kind), ctx, params)
    assert patch.diff(mutated, again) == [], "not idempotent"
    return ops, mutated
