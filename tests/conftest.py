"""Shared fixtures: a small test catalogue of policies, review builders, paths to shared data."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest

from webhook import errors
from webhook.policy import model, registry, settings, workloads

REPO = Path(__file__).resolve().parents[1]
SHARED_CONFORMANCE = REPO.parent / "shared" / "conformance"


def shared(subdir: str) -> Path:
    """A folder of ../shared/conformance, or skip the test when it is absent (e.g. a lone clone)."""
    path = SHARED_CONFORMANCE / subdir
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


class NoPrivilegedSettings(settings.GroupSettings):
    allowedImages: tuple[str, ...] = ()


class LabelSettings(settings.MutatingGroupSettings):
    labels: dict[str, str] = {}


def make_catalog() -> registry.Registry:
    """A catalogue independent of the built-in policies, so core tests pin the core's behaviour."""
    cat = registry.Registry()
    registry.group(
        "demo-pods",
        key="demoPods",
        chain="validating",
        settings_model=NoPrivilegedSettings,
        order=10,
        registry=cat,
    )
    registry.group(
        "demo-roles",
        key="demoRoles",
        chain="validating",
        settings_model=settings.GroupSettings,
        order=20,
        registry=cat,
    )
    registry.group(
        "demo-labels",
        key="demoLabels",
        chain="mutating",
        settings_model=LabelSettings,
        order=10,
        registry=cat,
    )

    @registry.check("demo-pods.privileged", group="demo-pods", pod_spec=True, registry=cat)
    def privileged(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> list[model.Violation]:
        bad = [
            c
            for _, _, c in workloads.containers(pod.spec)
            if (c.get("securityContext") or {}).get("privileged") is True
        ]
        if not bad:
            return []
        names = ", ".join(f'"{c.get("name")}"' for c in bad)
        return [
            model.Violation(
                "privileged",
                f"container {names} must not set securityContext.privileged=true",
                path=f"{pod.spec_path}.containers",
            )
        ]

    @registry.check("demo-pods.crash", group="demo-pods", pod_spec=True, registry=cat)
    def crash(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> list[model.Violation]:
        if pod.labels.get("crash") == "yes":
            raise RuntimeError("boom")
        return []

    @registry.check(
        "demo-roles.no-wildcard",
        group="demo-roles",
        kinds=["ClusterRole"],
        operations=["CREATE", "UPDATE", "DELETE"],
        registry=cat,
    )
    def wildcard(role: dict[str, Any], ctx: model.ReviewContext, params: Any) -> list[model.Violation]:
        out = []
        for i, rule in enumerate(role.get("rules") or []):
            if "*" in (rule.get("verbs") or []):
                out.append(
                    model.Violation(
                        "wildcard verb",
                        f'ClusterRole rules[{i}].verbs contains "*"',
                        path=f"rules[{i}].verbs",
                    )
                )
        return out

    @registry.mutation("demo-labels.add", group="demo-labels", pod_spec=True, registry=cat)
    def add_labels(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> None:
        if pod.labels.get("reject") == "yes":
            raise errors.MutationRejected('label "reject" is set; remove it')
        wanted = {k: v for k, v in params.labels.items() if k not in pod.labels}
        if wanted:
            pod.metadata_for_write().setdefault("labels", {}).update(wanted)

    return cat


def pod(name: str = "web", *, containers: list[dict[str, Any]] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": {"containers": containers or [{"name": "app", "image": "nginx:1.27"}]},
    }


def deployment(template: dict[str, Any], name: str = "web") -> dict[str, Any]:
    meta = {k: v for k, v in template["metadata"].items() if k not in ("name", "namespace")}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": meta, "spec": copy.deepcopy(template["spec"])},
        },
    }


GROUPS = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "ClusterRole": ("rbac.authorization.k8s.io", "v1", "clusterroles"),
}


def admission_review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    api_version: str = "admission.k8s.io/v1",
    kind: str | None = None,
    namespace: str = "default",
    username: str = "alice",
    groups: list[str] | None = None,
    uid: str | None = None,
    sub_resource: str = "",
) -> dict[str, Any]:
    source = obj if obj is not None else old
    kind = kind or (source or {}).get("kind", "Pod")
    group, version, resource = GROUPS.get(kind, ("", "v1", kind.lower() + "s"))
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "name": ((source or {}).get("metadata") or {}).get("name", ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": username, "groups": groups or ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


class FakeNamespaces:
    """The watch-fed namespace label cache of ``webhook.cluster``, without a cluster: ``labels``
    per namespace name, ``{}`` for any other namespace."""

    def __init__(self, labels: dict[str, dict[str, str]] | None = None) -> None:
        self._labels = labels or {}

    def labels(self, name: str) -> dict[str, str] | None:
        return dict(self._labels.get(name, {}))

    def stop(self) -> None:
        pass


class FakeAuthorizer:
    """The SubjectAccessReview cache, without a cluster: every answer still unknown."""

    def allowed(self, **_: Any) -> bool | None:
        return None

    def close(self) -> None:
        pass


class CountingAuthorizer(FakeAuthorizer):
    """Gives ``answer`` to every question and counts the SubjectAccessReviews asked for."""

    def __init__(self, answer: bool | None = None) -> None:
        self.answer = answer
        self.asked = 0

    def allowed(self, **_: Any) -> bool | None:
        self.asked += 1
        return self.answer
