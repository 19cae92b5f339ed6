"""Micro-benchmarks of the full default chains (``pytest --benchmark-enable -k bench``).

``make test`` runs them once each as plain tests (benchmarks disabled), so they also check that
the shipped chains run over a typical Pod without a policy failing. What the shipped policies answer
for it is pinned by policies/tests/security-context-test.yaml (resources/typical-pod.yaml), which a
user changing the policies updates with ``python -m webhook test --update policies/tests``.
"""

from __future__ import annotations

import functools
from typing import Any

from tests import conftest
from webhook import catalog, engine, review
from webhook.policy import files


@functools.cache
def default_policies() -> engine.PolicySet:
    return engine.PolicySet(files.load([conftest.REPO / "policies"]), catalog=catalog.REGISTRY)


def typical_pod() -> dict[str, Any]:
    """Two containers with ports, probes, resources, env and a config volume: a common app Pod."""
    app = {
        "name": "app",
        "image": "registry.example.com/shop/api:1.4.2",
        "ports": [{"containerPort": 8080, "name": "http"}],
        "env": [{"name": "LOG_LEVEL", "value": "info"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/api"}],
    }
    proxy = {"name": "proxy", "image": "registry.example.com/edge/proxy:2.0.1",
             "ports": [{"containerPort": 9090}], "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}
    obj = conftest.pod("api-7d4f9", containers=[app, proxy], labels={"app": "api"})
    obj["metadata"]["namespace"] = "shop"
    obj["spec"]["volumes"] = [{"name": "config", "configMap": {"name": "api"}}]
    return obj


def test_bench_default_validating_chain_typical_pod(benchmark: Any) -> None:
    parsed = review.parse(conftest.admission_review(typical_pod(), namespace="shop"))
    outcome = benchmark(engine.evaluate, default_policies(), parsed.object, parsed.context, chain="validating")
    assert outcome.failed_policies == []


def test_bench_default_mutating_chain_typical_pod(benchmark: Any) -> None:
    parsed = review.parse(conftest.admission_review(typical_pod(), namespace="shop"))
    outcome = benchmark(engine.evaluate, default_policies(), parsed.object, parsed.context, chain="mutating")
    assert outcome.failed_policies == []
    assert all(op["op"] == "add" for op in outcome.patch)  # the mutations only fill in what is unset
