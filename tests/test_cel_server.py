"""Admission policies through the served app: the cel group's routes, answers, log line, metrics,
a reload that adds policies, and params read from the cluster's watch cache."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import conftest
from webhook import appstate, cluster, config, server

EXAMPLES = conftest.REPO / "policies" / "examples" / "cel"
JSON = {"Content-Type": "application/json"}


def deployment(replicas: int, namespace: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}


def review_of(obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    body = conftest.admission_review(obj, **kwargs)
    body["request"]["kind"] = {"group": "apps", "version": "v1", "kind": obj["kind"]}
    body["request"]["resource"] = {"group": "apps", "version": "v1", "resource": "deployments"}
    return body


async def test_validating_policies_answer_on_validate_cel_with_their_texts_log_line_and_metrics(
    aiohttp_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from webhook import logs

    logs.configure(log_format="json")
    app = server.build_app(config.ServeSettings(policies=(EXAMPLES / "replica-limit",)))
    client = await aiohttp_client(app)
    too_many = review_of(deployment(10), namespace="shop")
    for path in ("/validate/cel", "/validate"):
        response = await client.post(path, json=too_many, headers=JSON)
        answer = (await response.json())["response"]
        assert answer["allowed"] is False
        assert answer["status"]["code"] == 403 and answer["status"]["reason"] == "Forbidden"
        assert answer["status"]["message"] == (
            "ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit' denied request: "
            "spec.replicas must be at most 5 (ConfigMap policy-config/replica-limit), got 10")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"review"' in line]
    assert lines[-1]["policies"] == ["replica-limit/replica-limit"] and lines[-1]["decision"] == "denied"
    text = await (await client.get("/metrics")).text()
    assert ('admission_policy_decisions_total{binding="replica-limit",chain="validating",decision="denied",'
            'policy="replica-limit"} 2.0') in text


async def test_mutating_policies_patch_on_mutate_cel(aiohttp_client: Any) -> None:
    app = server.build_app(config.ServeSettings(policies=(EXAMPLES / "mutating" / "default-team-label",)))
    client = await aiohttp_client(app)
    pod = conftest.pod("debug")
    response = await client.post("/mutate/cel", json=conftest.admission_review(pod, namespace="shop"), headers=JSON)
    answer = (await response.json())["response"]
    assert answer["allowed"] is True
    assert json.loads(base64.b64decode(answer["patch"])) == [
        {"op": "add", "path": "/metadata/labels", "value": {"team": "unassigned"}}]  # the Pod had no labels


async def test_a_reload_that_adds_policies_is_served_on_the_cel_route(aiohttp_client: Any, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "00-empty.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n")
    app = server.build_app(config.ServeSettings(policies=(policies,), reload_interval=0.05))
    client = await aiohttp_client(app)
    too_many = review_of(deployment(10))
    assert (await (await client.post("/validate/cel", json=too_many, headers=JSON)).json())["response"]["allowed"]
    shutil.copy(EXAMPLES / "replica-limit" / "replica-limit.yaml", policies / "10-replicas.yaml")
    for _ in range(200):
        await asyncio.sleep(0.02)
        if not app[appstate.POLICIES].current.cel.empty:
            break
    answer = (await (await client.post("/validate/cel", json=too_many, headers=JSON)).json())["response"]
    assert answer["allowed"] is False


class FakeParams:
    def __init__(self) -> None:
        self.cache = cluster.ParamCache()
        self.ensured: list[set[tuple[str, str]]] = []

    def objects(self, api_version: str, kind: str) -> tuple[dict[str, Any], ...]:
        return self.cache.objects(api_version, kind)

    def ensure(self, kinds: set[tuple[str, str]]) -> None:
        self.ensured.append(kinds)

    def stop(self) -> None:
        pass


async def test_params_come_from_the_clusters_watch_cache(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeParams()
    monkeypatch.setattr(cluster, "start_namespace_cache", lambda: (conftest.FakeNamespaces(), conftest.FakeAuthorizer()))
    monkeypatch.setattr(cluster, "start_param_cache", lambda: fake)
    # The policy and binding alone: the ConfigMap lives in the cluster, in another namespace.
    documents = yaml.safe_load_all((EXAMPLES / "replica-limit" / "replica-limit.yaml").read_text())
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump_all([d for d in documents if d and d["kind"] != "ConfigMap"]))
    app = server.build_app(config.ServeSettings(policies=(tmp_path,)), cluster=True)
    client = await aiohttp_client(app)
    assert fake.ensured == [{("v1", "ConfigMap")}]
    fake.cache.apply_event(("v1", "ConfigMap"), "ADDED", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "replica-limit", "namespace": "policy-config"},
        "data": {"maxReplicas": "3"}})
    answer = (await (await client.post("/validate", json=review_of(deployment(4)), headers=JSON)).json())["response"]
    assert answer["allowed"] is False and answer["status"]["message"].endswith("at most 3 (ConfigMap "
                                                                               "policy-config/replica-limit), got 4")
