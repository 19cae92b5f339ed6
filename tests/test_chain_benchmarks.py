"""Micro-benchmarks of the full default chains (``pytest --benchmark-enable -k bench``).

``make test`` runs them once each as plain tests (benchmarks disabled), so they also pin that
the shipped policies answer a typical Pod the way the README says.
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
    # Baseline passes; restricted would not (no runAsNonRoot, seccomp, ...): allowed with a warning.
    assert outcome.allowed
    assert outcome.warnings[0].startswith('would violate PodSecurity "restricted:latest": ')


def test_bench_default_mutating_chain_typical_pod(benchmark: Any) -> None:
    parsed = review.parse(conftest.admission_review(typical_pod(), namespace="shop"))
    outcome = benchmark(engine.evaluate, default_policies(), parsed.object, parsed.context, chain="mutating")
    assert outcome.allowed and outcome.patch
    assert all(op["op"] == "add" for op in outcome.patch)
