"""One factory builds the served app: its middleware order, and what each part sees of the others."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests import conftest
from webhook import appstate, cluster, config, deadlines, engine, faults, server
from webhook.policy import files

PRIVILEGED = [{"name": "app", "image": "nginx", "securityContext": {"privileged": True}}]
JSON = {"Content-Type": "application/json"}


def demo_policy_set(tmp_path: Path, body: str = "demoPods: {}\n") -> engine.PolicySet:
    (tmp_path / "p.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n" + body)
    catalog = conftest.make_catalog()
    return engine.PolicySet(files.load([tmp_path], catalog=catalog), catalog=catalog)


def test_middleware_order_is_errors_then_client_certificates_then_deadlines_then_faults(tmp_path: Path) -> None:
    settings = config.ServeSettings(policies=(tmp_path,), client_ca=tmp_path / "ca.crt")
    app = server.build_app(settings, policy_set=demo_policy_set(tmp_path), faults=faults.State())
    assert list(app.middlewares) == [
        server.error_middleware,
        server.require_client_certificate,
        deadlines.middleware,
        faults.middleware,
    ]
    plain = server.build_app(config.ServeSettings(policies=(tmp_path,)), policy_set=demo_policy_set(tmp_path))
    assert list(plain.middlewares) == [server.error_middleware, deadlines.middleware]


async def test_a_fault_delay_past_the_callers_timeout_gets_the_deadline_answer(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    state = faults.State(faults.FaultFile(paths={"/validate": faults.FaultConfig(delay=faults.Delay(fixed=5))}))
    app = server.build_app(config.ServeSettings(policies=(tmp_path,)), policy_set=demo_policy_set(tmp_path),
                           faults=state)
    client = await aiohttp_client(app)
    started = time.monotonic()
    response = await client.post("/validate?timeout=1s", json=conftest.admission_review(conftest.pod()), headers=JSON)
    elapsed = time.monotonic() - started
    assert response.status == 504
    assert await response.json() == {
        "error": "review not answered within 0.9s (the API server waits 1s); it applies the webhook's failurePolicy"
    }
    assert 0.85 <= elapsed < 1.5
    text = await (await client.get("/metrics")).text()
    assert 'admission_errors_total{path="/validate",type="deadline"} 1.0' in text


async def test_a_hang_fault_outlives_the_deadline_as_a_hung_server_would(aiohttp_client: Any, tmp_path: Path) -> None:
    state = faults.State(faults.FaultFile(paths={"/validate": faults.FaultConfig(failure="hang")}))
    app = server.build_app(config.ServeSettings(policies=(tmp_path,)), policy_set=demo_policy_set(tmp_path),
                           faults=state)
    client = await aiohttp_client(app)
    started = time.monotonic()
    response = await client.post("/validate?timeout=0.3s", json=conftest.admission_review(conftest.pod()),
                                 headers=JSON)
    assert response.status == 504
    assert await response.text() == "fault injected: answered after the caller's deadline"
    assert time.monotonic() - started >= 1.3  # 0.3 s + 1 s: never answered before the caller gave up


async def test_cluster_caches_started_by_the_factory_feed_namespace_labels_to_reviews(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespaces = conftest.FakeNamespaces({"strict": {"pod-security.admission.dev/enforce": "restricted"}})
    monkeypatch.setattr(cluster, "start_namespace_cache", lambda: (namespaces, conftest.FakeAuthorizer()))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\npodSecurity:\n  level: baseline\n"
        "  scope:\n    namespaceSelector:\n      matchLabels: {pod-security.admission.dev/enforce: restricted}\n"
    )
    app = server.build_app(config.ServeSettings(policies=(policies,)), cluster=True)
    client = await aiohttp_client(app)
    assert isinstance(app[appstate.CLUSTER].namespaces, conftest.FakeNamespaces)
    bad = conftest.pod(containers=PRIVILEGED)
    strict = await client.post("/validate", json=conftest.admission_review(bad, namespace="strict"), headers=JSON)
    assert (await strict.json())["response"]["allowed"] is False  # labelled namespace: in scope
    other = await client.post("/validate", json=conftest.admission_review(bad, namespace="other"), headers=JSON)
    assert (await other.json())["response"]["allowed"] is True  # known labels, not matching


async def test_json_limits_come_from_the_settings(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = config.ServeSettings(policies=(tmp_path,), max_json_depth=8, max_json_containers=100)
    client = await aiohttp_client(server.build_app(settings, policy_set=demo_policy_set(tmp_path)))
    deep = conftest.pod()
    deep["metadata"]["annotations"] = {"x": "y"}
    deep["spec"]["affinity"] = {"a": {"b": {"c": {"d": {"e": {}}}}}}
    response = await client.post("/validate", json=conftest.admission_review(deep), headers=JSON)
    assert response.status == 400
    assert (await response.json())["error"] == (
        "body is nested more than 8 levels deep, over the limit per review (Kubernetes objects are rarely deeper "
        "than 30)")
