"""What ``serve`` runs beside the handlers is really wired: the cluster caches reach reviews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import conftest
from webhook import certs, cluster, config, limits, runner, tls

PRIVILEGED = [{"name": "app", "image": "nginx", "securityContext": {"privileged": True}}]


class FakeNamespaces:
    def labels(self, name: str) -> dict[str, str] | None:
        return {"pod-security.admission.dev/enforce": "restricted"} if name == "strict" else {}

    def stop(self) -> None:
        pass


class FakeAuthorizer:
    def allowed(self, **_: Any) -> bool | None:
        return None

    def close(self) -> None:
        pass


async def test_serving_app_feeds_namespace_labels_from_the_cluster_cache(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "start_namespace_cache", lambda: (FakeNamespaces(), FakeAuthorizer()))
    certs.ensure(tmp_path / "certs", service="admission-webhook", namespace="admission-webhook")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\npodSecurity:\n  level: baseline\n"
        "  scope:\n    namespaceSelector:\n      matchLabels: {pod-security.admission.dev/enforce: restricted}\n"
    )
    cert, key = tmp_path / "certs" / "tls.crt", tmp_path / "certs" / "tls.key"
    settings = config.ServeSettings(policies=(policies,), cert=cert, key=key)
    app = runner.serving_app(settings, context=tls.server_context(cert=cert, key=key), timeouts=limits.Timeouts())
    client = await aiohttp_client(app)
    bad = conftest.pod(containers=PRIVILEGED)
    headers = {"Content-Type": "application/json"}
    strict = await client.post("/validate", json=conftest.admission_review(bad, namespace="strict"), headers=headers)
    assert (await strict.json())["response"]["allowed"] is False  # labelled namespace: in scope
    other = await client.post("/validate", json=conftest.admission_review(bad, namespace="other"), headers=headers)
    assert (await other.json())["response"]["allowed"] is True  # known labels, not matching
