"""The namespace cache: watch events feed it; reviews only read it; no cluster means no labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import conftest
from webhook import cluster, errors


def test_watch_events_update_and_delete_labels() -> None:
    cache = cluster.NamespaceCache()
    assert cache.labels("team-a") is None  # unknown, not "no labels"
    cache.apply_event("ADDED", "team-a", {"env": "prod"})
    cache.apply_event("MODIFIED", "team-a", {"env": "dev"})
    cache.apply_event("ADDED", "team-b", None)
    assert cache.labels("team-a") == {"env": "dev"}
    assert cache.labels("team-b") == {}
    cache.apply_event("DELETED", "team-a", None)
    assert cache.labels("team-a") is None


def test_without_credentials_the_cache_is_not_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    with pytest.raises(errors.ClusterUnavailable, match="no in-cluster service account and no kubeconfig file"):
        cluster.load_credentials()
    assert cluster.start_namespace_cache() is None


def test_an_unusable_kubeconfig_is_reported_as_such(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(errors.ClusterUnavailable, match="no in-cluster credentials and no usable kubeconfig"):
        cluster.load_credentials()


def test_access_review_cache_answers_from_cache_and_never_blocks() -> None:
    import threading

    asked: list[tuple[object, ...]] = []
    gate = threading.Event()

    def ask(*key: object) -> bool:
        asked.append(key)
        gate.wait(5)
        return key[0] == "alice"

    cache = cluster.AccessReviewCache(ask, ttl=60)
    question = dict(
        groups=("devs",),
        verb="use",
        group="admission.dev",
        resource="exemptions",
        name="privileged-pods",
        namespace="team-a",
    )
    assert cache.allowed(user="alice", **question) is None  # miss: unknown now, asked in background
    assert cache.allowed(user="alice", **question) is None  # still pending: asked only once
    gate.set()
    for _ in range(100):
        if cache.allowed(user="alice", **question) is not None:
            break
        threading.Event().wait(0.01)
    assert cache.allowed(user="alice", **question) is True
    assert len(asked) == 1
    cache.close()


def test_no_credentials_means_the_kubernetes_client_is_not_even_imported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from webhook import cluster, errors\n"
        "try:\n    cluster.load_credentials()\nexcept errors.ClusterUnavailable as exc:\n    print(exc)\n"
        "print('kubernetes' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=str(conftest.REPO)).stdout.splitlines()
    assert out == ["no in-cluster service account and no kubeconfig file (KUBECONFIG or ~/.kube/config)", "False"]


def test_the_cel_authorizer_question_is_asked_whole_and_cached() -> None:
    import threading

    from webhook.cel import k8s_authz

    asked: list[k8s_authz.Attributes] = []

    def ask_full(attributes: k8s_authz.Attributes) -> k8s_authz.Decision:
        asked.append(attributes)
        return k8s_authz.Decision(allowed=attributes.subresource == "scale", reason="RBAC: test")

    cache = cluster.AccessReviewCache(lambda *key: False, ttl=60, ask_full=ask_full)
    question = k8s_authz.Attributes(user="alice", groups=("devs",), verb="update", group="apps",
                                    resource="deployments", subresource="scale", namespace="shop", name="web")
    assert cache.authorize(question) is None  # asked in the background
    for _ in range(100):
        answer = cache.authorize(question)
        if answer is not None:
            break
        threading.Event().wait(0.01)
    assert answer == k8s_authz.Decision(allowed=True, reason="RBAC: test")
    assert asked == [question]  # once, then from the cache
    assert cluster.AccessReviewCache(lambda *key: False).authorize(question) is None  # no full asker: unknown
