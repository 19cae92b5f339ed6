"""``audit`` against a cluster: paging, discovery, every failure as one line, reports written back.

:class:`FakeApiServer` stands in for ``kubernetes.client.ApiClient``: it answers the calls
:mod:`webhook.audit.live` makes (``param_serialize`` + ``call_api``, the client's own convention) from
objects in memory, with ``limit``/``continue`` paging, label selectors, discovery documents,
server-side apply and deletes, and can refuse (403), not serve (404), expire a continue token (410)
or time out. With ``KUBEBUILDER_ASSETS`` naming a directory with ``kube-apiserver`` and ``etcd``
(the envtest convention), the last test runs the same command against a real API server.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3

from tests import test_audit_dumps as dumps
from webhook import cli, registration
from webhook.audit import live, reports, selectors

REPO = Path(__file__).resolve().parents[1]

# (group, version, resource) -> (kind, namespaced), for discovery and lists.
SERVED: dict[tuple[str, str, str], tuple[str, bool]] = {
    (group, version, resource): (kind, kind not in ("PersistentVolume", "StorageClass", "ClusterRole",
                                                    "ClusterRoleBinding"))
    for kind, (group, version, resource) in registration.RESOURCES.items()
}
SERVED[("", "v1", "namespaces")] = ("Namespace", False)
SERVED[("", "v1", "configmaps")] = ("ConfigMap", True)
REPORT_APIS = {
    ("wgpolicyk8s.io", "v1alpha2", "policyreports"): ("PolicyReport", True),
    ("wgpolicyk8s.io", "v1alpha2", "clusterpolicyreports"): ("ClusterPolicyReport", False),
    ("openreports.io", "v1alpha1", "reports"): ("Report", True),
    ("openreports.io", "v1alpha1", "clusterreports"): ("ClusterReport", False),
}


class Response:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.reason = {200: "OK", 201: "Created", 403: "Forbidden", 404: "Not Found", 410: "Gone"}.get(status, "")
        self._data = json.dumps(body).encode()

    def read(self) -> bytes:
        return self._data


def status(code: int, reason: str, message: str, **metadata: Any) -> Response:
    return Response(code, {"kind": "Status", "apiVersion": "v1", "metadata": metadata, "status": "Failure",
                           "message": message, "reason": reason, "code": code})


class FakeApiServer:
    """In-memory objects behind the ApiClient calling convention."""

    def __init__(self, objects: list[dict[str, Any]], *, crds: bool = True) -> None:
        self.configuration = SimpleNamespace(host="https://fake-apiserver:6443")
        self.served = dict(SERVED)
        if crds:
            self.served.update(REPORT_APIS)
        self.store: dict[tuple[str, str, str], list[dict[str, Any]]] = {key: [] for key in self.served}
        by_kind = {(kind, f"{g}/{v}" if g else v): key for key, (kind, _) in self.served.items() for g, v, _ in [key]}
        for obj in objects:
            key = by_kind.get((obj["kind"], obj["apiVersion"]))
            if key is not None:
                self.store[key].append(json.loads(json.dumps(obj)))
        self.forbidden: set[str] = set()
        self.timeouts: set[str] = set()
        self.expire_after: dict[str, int] = {}
        self.invalid: set[str] = set()
        """Paths whose apply is refused as invalid (HTTP 422)."""
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.applied: list[tuple[str, dict[str, str], str, dict[str, Any]]] = []

    # The two methods webhook.audit.live calls.
    def param_serialize(self, method: str, path: str, *, query_params: list[tuple[str, str]],
                        header_params: dict[str, str], body: Any, auth_settings: list[str]) -> tuple[Any, ...]:
        assert auth_settings == ["BearerToken"]
        url = path + ("?" + urllib.parse.urlencode(query_params) if query_params else "")
        return method, url, header_params, body, None

    def call_api(self, method: str, url: str, headers: dict[str, str], body: Any, post_params: Any,
                 _request_timeout: float | None = None) -> Response:
        parsed = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        self.calls.append((method, parsed.path, query))
        resource = parsed.path.rstrip("/").split("/")
        if parsed.path in self.timeouts:
            raise urllib3.exceptions.MaxRetryError(None, url, urllib3.exceptions.ReadTimeoutError(None, url, "Read timed out."))
        if parsed.path in self.forbidden:
            return status(403, "Forbidden", f'{resource[-1]} is forbidden: User "system:serviceaccount:admission-webhook:'
                          f'admission-webhook-audit" cannot list resource "{resource[-1]}" at the cluster scope')
        if method == "GET" and parsed.path == "/api":
            return Response(200, {"kind": "APIVersions", "versions": ["v1"]})
        if method == "GET" and parsed.path == "/apis":
            groups = sorted({g for g, _, _ in self.served if g})
            return Response(200, {"kind": "APIGroupList", "groups": [
                {"name": g, "versions": [{"version": v} for v in sorted({v for gg, v, _ in self.served if gg == g})],
                 "preferredVersion": {"version": sorted({v for gg, v, _ in self.served if gg == g})[0]}}
                for g in groups]})
        group, version, namespace, plural, name = self._route(parsed.path)
        if plural is None:
            found = [{"name": r, "kind": k, "namespaced": n, "verbs": ["list", "watch", "patch"]}
                     for (g, v, r), (k, n) in self.served.items() if (g, v) == (group, version)]
            if not found:
                return status(404, "NotFound", "the server could not find the requested resource")
            return Response(200, {"kind": "APIResourceList", "groupVersion": version, "resources": found})
        key = (group, version, plural)
        if key not in self.served:
            return status(404, "NotFound", "the server could not find the requested resource")
        if method == "GET":
            return self._list(key, namespace, query)
        if method == "PATCH":
            assert headers["Content-Type"] == "application/apply-patch+yaml"
            assert query == {"fieldManager": "admission-webhook-audit", "force": "true"}
            if parsed.path in self.invalid:
                return status(422, "Invalid", 'PolicyReport.wgpolicyk8s.io "admission-webhook-audit" is invalid: '
                              "results[0].severity: Unsupported value")
            self.applied.append((parsed.path, query, headers["Content-Type"], body))
            stored = [o for o in self.store[key] if not self._is(o, namespace, name)]
            self.store[key] = [*stored, json.loads(json.dumps(body))]
            return Response(200, body)
        if method == "DELETE":
            before = len(self.store[key])
            self.store[key] = [o for o in self.store[key] if not self._is(o, namespace, name)]
            return Response(200, {}) if len(self.store[key]) < before else status(404, "NotFound", "not found")
        raise AssertionError(f"unexpected call {method} {url}")

    @staticmethod
    def _is(obj: dict[str, Any], namespace: str | None, name: str | None) -> bool:
        return obj["metadata"].get("namespace") == namespace and obj["metadata"]["name"] == name

    @staticmethod
    def _route(path: str) -> tuple[str, str, str | None, str | None, str | None]:
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces" and (len(rest) > 2):
            namespace, rest = rest[1], rest[2:]
        plural = rest[0] if rest else None
        name = rest[1] if len(rest) > 1 else None
        return group, version, namespace, plural, name

    def _list(self, key: tuple[str, str, str], namespace: str | None, query: dict[str, str]) -> Response:
        path = key[2]
        items = [o for o in self.store[key] if namespace is None or o["metadata"].get("namespace") == namespace]
        if "labelSelector" in query:
            selector = selectors.parse(query["labelSelector"])
            items = [o for o in items if selector.matches(o["metadata"].get("labels") or {})]
        if "fieldSelector" in query:
            field, _, value = query["fieldSelector"].partition("=")
            assert field == "metadata.name"
            items = [o for o in items if o["metadata"]["name"] == value]
        start = int(query.get("continue") or 0)
        limit = int(query["limit"])
        if start and start >= self.expire_after.get(path, start + 1):
            del self.expire_after[path]
            return status(410, "Expired", "The provided continue parameter is too old to display a consistent list "
                          "result.", **{"continue": str(start)})
        page = []
        for obj in items[start:start + limit]:
            listed = json.loads(json.dumps(obj))
            del listed["apiVersion"], listed["kind"]  # list items carry no kind, as the API server sends them
            page.append(listed)
        more = start + limit < len(items)
        kind = self.served[key][0]
        return Response(200, {"kind": f"{kind}List", "apiVersion": f"{key[0]}/{key[1]}" if key[0] else key[1],
                              "metadata": {"resourceVersion": "999", **({"continue": str(start + limit)} if more else {})},
                              "items": page})

    def lists(self, path: str) -> list[dict[str, str]]:
        return [q for m, p, q in self.calls if m == "GET" and p == path]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeApiServer:
    server = FakeApiServer(dumps.cluster())
    monkeypatch.setattr(live, "connect", lambda **_: server)
    return server


def audit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["audit", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_kind_is_listed_in_pages_and_evaluated_like_the_dump(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer, tmp_path: Path
) -> None:
    code, out, err = audit(capsys, "--page-size", "2")
    assert (code, err) == (1, "")
    pods = fake.lists("/api/v1/pods")
    assert [q.get("continue") for q in pods] == [None, "2", "4", "6", "8", "10", "12", "14"]  # 16 Pods
    assert all(q["limit"] == "2" for q in pods)
    # The cluster in the fake and the same objects in a dump give the same report, less the
    # ConfigMaps and Namespaces no policy checks (the cluster is not even asked for them).
    dump_path = dumps.write_yaml(tmp_path / "same.yaml", dumps.cluster())
    _, from_dump, _ = audit(capsys, "--from", str(dump_path))
    assert out.splitlines()[:19] == from_dump.splitlines()[:19]
    assert "35 objects evaluated: 16 reported, 19 folded into their owners" in out
    assert not [q for m, p, q in fake.calls if p.endswith("/configmaps")]


def test_namespace_and_selector_are_passed_to_the_api_server(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer
) -> None:
    audit(capsys, "-n", "shop-1", "-l", "team=shop-1")
    assert fake.lists("/api/v1/namespaces") == [{"limit": "500", "fieldSelector": "metadata.name=shop-1"}]
    assert fake.lists("/api/v1/namespaces/shop-1/pods") == [{"limit": "500", "labelSelector": "team=shop-1"}]
    assert not fake.lists("/apis/rbac.authorization.k8s.io/v1/clusterroles")  # cluster-scoped: not in a namespace


def test_a_forbidden_list_is_one_line_and_the_rest_is_audited(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer
) -> None:
    fake.forbidden.add("/apis/apps/v1/daemonsets")
    code, out, err = audit(capsys)
    assert code == 2
    assert err.splitlines() == [
        'error: DaemonSet (apps/v1 daemonsets): list is forbidden (HTTP 403: daemonsets is forbidden: User '
        '"system:serviceaccount:admission-webhook:admission-webhook-audit" cannot list resource "daemonsets" at the '
        "cluster scope); grant `list` on daemonsets in API group apps (deploy/components/audit's ClusterRole lists "
        "what the default policies need); skipped",
        "audit: partial: 1 problem(s) above; what could be read was evaluated",
    ]
    # Its Pods are still listed: with their owner unknown, each is reported on its own.
    assert "34 objects evaluated: 18 reported, 16 folded into their owners" in out


def test_a_kind_the_cluster_does_not_serve_is_one_line(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "widgets.yaml").write_text("""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: widget-size}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [example.com], apiVersions: [v1], operations: [CREATE], resources: [widgets]}
  validations:
  - expression: "object.spec.size < 10"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: widget-size}
spec: {policyName: widget-size, validationActions: [Deny]}
""")
    code, out, err = audit(capsys, "--policies", str(policies))
    assert code == 2
    assert err.splitlines()[0] == (
        "error: example.com/v1 widgets: the cluster does not serve it; widget-size applies to it: check the group and "
        "version against `kubectl api-resources`; skipped")


def test_wildcard_rules_are_expanded_with_discovery(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "all.yaml").write_text("""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-debug-label}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: ["*"], operations: ["*"], resources: ["*"]}
  validations:
  - expression: "!has(object.metadata.labels) || !('debug' in object.metadata.labels)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-debug-label}
spec: {policyName: no-debug-label, validationActions: [Warn]}
""")
    code, out, _ = audit(capsys, "--policies", str(policies), "-o", "json")
    assert code == 0
    assert fake.lists("/api/v1/configmaps") and fake.lists("/api/v1/persistentvolumes")
    (row,) = json.loads(out)["summary"]["policies"]
    assert row["policy"] == "no-debug-label" and row["checked"] > 20


def test_an_api_timeout_is_one_line_naming_the_kind_and_what_to_do(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer
) -> None:
    fake.timeouts.add("/apis/batch/v1/cronjobs")
    code, _, err = audit(capsys, "--request-timeout", "5")
    assert code == 2
    assert err.splitlines()[0] == (
        "error: CronJob (batch/v1 cronjobs): list timed out: no answer within 5s; retry, or lower --page-size or "
        "raise --request-timeout; the rest of it is skipped")


def test_an_expired_continue_token_goes_on_with_the_one_the_api_server_offers(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer
) -> None:
    fake.expire_after["pods"] = 4
    code, out, err = audit(capsys, "--page-size", "2")
    assert code == 1
    assert err.startswith("note: Pod (v1 pods): the list took longer than etcd keeps its snapshot")
    assert "35 objects evaluated" in out


def test_an_unreachable_api_server_stops_the_audit_with_one_line(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer
) -> None:
    fake.timeouts.add("/api/v1/namespaces")
    fake.forbidden.clear()

    def refuse(*_: Any, **__: Any) -> Response:
        raise urllib3.exceptions.MaxRetryError(None, "/api", urllib3.exceptions.NewConnectionError(
            None, "Failed to establish a new connection: [Errno 111] Connection refused"))  # type: ignore[arg-type]

    fake.call_api = refuse  # type: ignore[method-assign]
    code, _, err = audit(capsys)
    assert code == 2
    assert err.startswith("error: cannot list Namespaces: cannot reach https://fake-apiserver:6443:")
    assert err.rstrip().endswith("check the kubeconfig, context and network") and err.count("\n") == 1


def test_no_credentials_is_one_line_saying_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    code, out, err = audit(capsys)
    assert (code, out) == (2, "")
    assert err == (
        "error: cannot connect to a cluster: no in-cluster service account and no kubeconfig file (KUBECONFIG or "
        "~/.kube/config); run it in the cluster, pass --kubeconfig (or set KUBECONFIG), or audit a dump with --from\n")
    code, _, err = audit(capsys, "--kubeconfig", str(tmp_path / "nope"))
    assert code == 2 and err.startswith(f"error: --kubeconfig {tmp_path / 'nope'}: no such file;")


def kubeconfig(path: Path, server: str, *, token: str = "t0k3n", context: str = "audit") -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def test_kubeconfig_and_context_choose_the_cluster(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "https://10.1.2.3:6443")
    client = live.connect(kubeconfig=str(path), context="audit")
    assert client.configuration.host == "https://10.1.2.3:6443"
    with pytest.raises(live.model.AuditError) as caught:
        live.connect(kubeconfig=str(path), context="elsewhere")
    assert str(caught.value).startswith("cannot connect with context 'elsewhere': ")


def reports_in(fake: FakeApiServer, plural: str = "policyreports") -> dict[tuple[str, str], dict[str, Any]]:
    key = next(k for k in fake.store if k[2] == plural)
    return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in fake.store[key]}


def test_apply_writes_reports_with_server_side_apply_and_removes_stale_ones(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer
) -> None:
    code, out, err = audit(capsys, "--apply", "--fail-on", "none")
    assert (code, err) == (0, "")
    assert out.splitlines()[:5] == [
        "PolicyReport batch/admission-webhook-audit created (0 fail, 5 warn, 4 pass, 0 error, 0 skip)",
        "PolicyReport monitoring/admission-webhook-audit created (4 fail, 5 warn, 1 pass, 0 error, 0 skip)",
        "PolicyReport shop-1/admission-webhook-audit created (2 fail, 8 warn, 7 pass, 0 error, 0 skip)",
        "PolicyReport shop-2/admission-webhook-audit created (2 fail, 8 warn, 7 pass, 0 error, 0 skip)",
        "ClusterPolicyReport admission-webhook-audit created (2 fail, 2 warn, 1 pass, 0 error, 0 skip)",
    ]
    assert {path for path, *_ in fake.applied} == {
        *(f"/apis/wgpolicyk8s.io/v1alpha2/namespaces/{ns}/policyreports/admission-webhook-audit"
          for ns in ("batch", "monitoring", "shop-1", "shop-2")),
        "/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/admission-webhook-audit",
    }
    # The privileged node agent goes away, shop-2 is emptied: its results and its report go.
    pods = fake.store[("", "v1", "pods")]
    fake.store[("apps", "v1", "daemonsets")] = []
    fake.store[("", "v1", "pods")] = [p for p in pods if p["metadata"]["namespace"] not in ("monitoring", "shop-2")]
    for key in [("apps", "v1", "deployments"), ("apps", "v1", "replicasets"), ("", "v1", "persistentvolumeclaims"),
                ("rbac.authorization.k8s.io", "v1", "roles")]:
        fake.store[key] = [o for o in fake.store[key] if o["metadata"]["namespace"] != "shop-2"]
    code, out, _ = audit(capsys, "--apply", "--fail-on", "none")
    assert "PolicyReport shop-2/admission-webhook-audit deleted (nothing left to report)" in out
    assert "PolicyReport monitoring/admission-webhook-audit deleted (nothing left to report)" in out
    assert "PolicyReport shop-1/admission-webhook-audit configured (2 fail, 8 warn, 7 pass, 0 error, 0 skip)" in out
    assert set(reports_in(fake)) == {("batch", "admission-webhook-audit"), ("shop-1", "admission-webhook-audit")}


def test_a_partial_scan_keeps_the_old_results_of_the_kinds_it_could_not_list(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer
) -> None:
    audit(capsys, "--apply")
    before = reports_in(fake)[("monitoring", "admission-webhook-audit")]["results"]
    fake.forbidden.add("/apis/apps/v1/daemonsets")
    code, out, err = audit(capsys, "--apply")
    assert code == 2 and "DaemonSet (apps/v1 daemonsets): list is forbidden" in err
    after = reports_in(fake)[("monitoring", "admission-webhook-audit")]["results"]
    kept = [r for r in before if r["resources"][0]["kind"] == "DaemonSet"]
    assert kept and [r for r in after if r["resources"][0]["kind"] == "DaemonSet"] == kept
    # Its Pods, listed this time but not folded (their owner unknown), are reported each.
    assert {r["resources"][0]["name"] for r in after if r["resources"][0]["kind"] == "Pod"} == {
        f"node-agent-{n}x7q" for n in range(3)}


def test_a_refused_report_is_one_line_and_the_previous_one_is_kept(
    capsys: pytest.CaptureFixture[str], fake: FakeApiServer
) -> None:
    audit(capsys, "--apply")
    path = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/batch/policyreports/admission-webhook-audit"
    fake.invalid.add(path)
    fake.store[("batch", "v1", "cronjobs")] = []
    code, out, err = audit(capsys, "--apply", "--fail-on", "none")
    assert code == 2
    assert err.splitlines()[0] == (
        'error: PolicyReport batch/admission-webhook-audit: not written: HTTP 422 Invalid: PolicyReport.wgpolicyk8s.io '
        '"admission-webhook-audit" is invalid: results[0].severity: Unsupported value; the previous one is kept')
    assert ("batch", "admission-webhook-audit") in reports_in(fake)
    assert "PolicyReport shop-1/admission-webhook-audit configured" in out


def test_a_report_crd_not_installed_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeApiServer(dumps.cluster(), crds=False)
    monkeypatch.setattr(live, "connect", lambda **_: server)
    code, out, err = audit(capsys, "--apply")
    assert code == 2
    assert err.splitlines()[0] == (
        "error: cannot write PolicyReport/ClusterPolicyReport (wgpolicyk8s.io/v1alpha2): the cluster does not serve "
        "them (the CRD is not installed); install the CRDs (see docs/audit.md) or use --report-api openreports")
    assert "35 objects evaluated" in out  # the audit itself still ran and says what it found


def test_openreports_are_written_to_their_own_api(capsys: pytest.CaptureFixture[str], fake: FakeApiServer) -> None:
    code, out, _ = audit(capsys, "--apply", "--report-api", "openreports", "-n", "monitoring")
    assert code == 1
    assert out.splitlines()[0] == (
        "Report monitoring/admission-webhook-audit created (4 fail, 5 warn, 1 pass, 0 error, 0 skip)")
    (report,) = reports_in(fake, "reports").values()
    assert report["apiVersion"] == "openreports.io/v1alpha1" and report["source"] == "admission-webhook"
    assert not reports_in(fake, "clusterreports")  # --namespace: the cluster report is not touched


# --- a real API server (envtest) ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


CRD_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["policy"],
    "properties": {
        "source": {"type": "string"}, "policy": {"type": "string"}, "rule": {"type": "string"},
        "category": {"type": "string"}, "severity": {"type": "string", "enum": ["high", "low", "medium"]},
        "timestamp": {"type": "object", "required": ["nanos", "seconds"], "properties": {
            "nanos": {"type": "integer", "format": "int32"}, "seconds": {"type": "integer", "format": "int64"}}},
        "result": {"type": "string", "enum": ["pass", "fail", "warn", "error", "skip"]},
        "scored": {"type": "boolean"},
        "resources": {"type": "array", "items": {"type": "object", "properties": {
            k: {"type": "string"} for k in ("apiVersion", "kind", "namespace", "name", "uid", "resourceVersion",
                                            "fieldPath")}}},
        "message": {"type": "string"},
        "properties": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def report_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    """The v1alpha2 CRD's schema for what the audit writes (kubernetes-sigs/wg-policy-prototypes,
    policy-report/crd/v1alpha2): unknown fields are pruned, enums and required fields enforced."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.wgpolicyk8s.io"},
        "spec": {"group": "wgpolicyk8s.io", "scope": scope,
                 "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
                 "versions": [{"name": "v1alpha2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {
                         "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                         "summary": {"type": "object", "properties": {
                             k: {"type": "integer"} for k in ("pass", "fail", "warn", "error", "skip")}},
                         "results": {"type": "array", "items": CRD_RESULT_SCHEMA}}}}}]},
    }


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """etcd and kube-apiserver from ``KUBEBUILDER_ASSETS`` on loopback; yields a kubeconfig."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        pytest.skip("KUBEBUILDER_ASSETS is not set (a directory holding kube-apiserver and etcd)")
    binaries = {name: Path(assets) / name for name in ("etcd", "kube-apiserver")}
    missing = [str(p) for p in binaries.values() if not p.is_file()]
    if missing:
        pytest.skip(f"KUBEBUILDER_ASSETS lacks {', '.join(missing)}")
    work = tmp_path_factory.mktemp("envtest")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (work / "sa.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    (work / "sa.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    token = base64.urlsafe_b64encode(os.urandom(18)).decode()
    (work / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    processes = [subprocess.Popen(
        [str(binaries["etcd"]), "--data-dir", str(work / "etcd"), "--listen-client-urls",
         f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer_port}", "--unsafe-no-fsync"],
        stdout=subprocess.DEVNULL, stderr=(work / "etcd.log").open("w"))]
    processes.append(subprocess.Popen(
        [str(binaries["kube-apiserver"]), "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
         "--cert-dir", str(work / "certs"), "--bind-address", "127.0.0.1", "--secure-port", str(api_port),
         "--token-auth-file", str(work / "tokens.csv"), "--authorization-mode", "RBAC",
         "--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file",
         str(work / "sa.pub"), "--service-account-signing-key-file", str(work / "sa.key"),
         "--service-cluster-ip-range", "10.0.0.0/24", "--disable-admission-plugins", "ServiceAccount"],
        stdout=subprocess.DEVNULL, stderr=(work / "apiserver.log").open("w")))
    config = kubeconfig(work / "kubeconfig", f"https://127.0.0.1:{api_port}", token=token)
    try:
        cluster = live.Cluster(live.connect(kubeconfig=str(config)), timeout=5)
        deadline = time.monotonic() + 60
        while True:
            try:
                cluster.call("GET", "/api/v1/namespaces/default")
                break
            except live.ApiError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    pytest.fail("kube-apiserver did not become ready:\n" + (work / "apiserver.log").read_text()[-3000:])
                time.sleep(0.5)
        for kind, plural, scope in (("PolicyReport", "policyreports", "Namespaced"),
                                    ("ClusterPolicyReport", "clusterpolicyreports", "Cluster")):
            cluster.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                         body=report_crd(kind, plural, scope))
        deadline = time.monotonic() + 30
        while cluster.resources("wgpolicyk8s.io", "v1alpha2") is None or len(
                cluster.resources("wgpolicyk8s.io", "v1alpha2") or {}) < 2:
            if time.monotonic() > deadline:
                pytest.fail("the report CRDs were not served in time")
            time.sleep(0.5)
        yield config
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work / "etcd", ignore_errors=True)


def test_apply_against_a_real_api_server_and_read_the_reports_back(apiserver: Path) -> None:
    cluster = live.Cluster(live.connect(kubeconfig=str(apiserver)), timeout=10)
    objects = [o for o in dumps.cluster(shops=1, replicas=1)
               if o["kind"] in ("Namespace", "Deployment", "DaemonSet", "ClusterRole", "PersistentVolume")]
    for obj in objects:
        body = {k: v for k, v in obj.items() if k != "status"}
        body["metadata"] = {k: v for k, v in obj["metadata"].items()
                            if k in ("name", "namespace", "labels", "annotations")}
        group_version = obj["apiVersion"]
        base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        plural = registration.RESOURCES.get(obj["kind"], ("", "", "namespaces"))[2]
        namespace = obj["metadata"].get("namespace")
        path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        cluster.call("POST", path, body=body)
    command = [sys.executable, "-m", "webhook", "audit", "--kubeconfig", str(apiserver), "--apply", "--fail-on",
               "none", "--no-progress", "--page-size", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert "PolicyReport monitoring/admission-webhook-audit created" in done.stdout
    report = cluster.call("GET", "/apis/wgpolicyk8s.io/v1alpha2/namespaces/monitoring/policyreports/"
                                 "admission-webhook-audit")
    assert report["summary"]["fail"] >= 3
    privileged = [r for r in report["results"] if r.get("rule") == "privileged" and r["policy"] == "pod-security"]
    assert privileged and privileged[0]["resources"][0]["kind"] == "DaemonSet"
    assert privileged[0]["resources"][0]["uid"]  # the API server's uid, not the dump's
    cluster_report = cluster.call("GET", "/apis/wgpolicyk8s.io/v1alpha2/clusterpolicyreports/admission-webhook-audit")
    assert {r["resources"][0]["kind"] for r in cluster_report["results"]} >= {"ClusterRole", "PersistentVolume"}
    managed = report["metadata"]["managedFields"]
    assert [m["manager"] for m in managed if m["operation"] == "Apply"] == [reports.FIELD_MANAGER]
    # The privileged DaemonSet is removed: the next run removes its results (the report goes).
    cluster.call("DELETE", "/apis/apps/v1/namespaces/monitoring/daemonsets/node-agent")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert "PolicyReport monitoring/admission-webhook-audit deleted (nothing left to report)" in done.stdout
    with pytest.raises(live.ApiError) as gone:
        cluster.call("GET", "/apis/wgpolicyk8s.io/v1alpha2/namespaces/monitoring/policyreports/admission-webhook-audit")
    assert gone.value.status == 404


class LegacyApiClient:
    """The client before version 34: ``call_api`` raises ApiException for error statuses."""

    def __init__(self, answers: dict[str, tuple[int, Any]]) -> None:
        self.configuration = SimpleNamespace(host="https://legacy:6443")
        self.answers = answers

    def call_api(self, path: str, method: str, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        assert kwargs["_preload_content"] is False and kwargs["auth_settings"] == ["BearerToken"]
        code, body = self.answers[path]
        if code >= 300:
            error = ApiException(status=code, reason="Forbidden")
            error.body = json.dumps(body).encode()
            raise error
        return SimpleNamespace(status=code, reason="OK", data=json.dumps(body).encode())


def test_the_client_before_version_34_is_spoken_to_as_well() -> None:
    cluster = live.Cluster(LegacyApiClient({
        "/api/v1/pods": (200, {"kind": "PodList", "items": [{"metadata": {"name": "a"}}], "metadata": {}}),
        "/api/v1/secrets": (403, {"kind": "Status", "message": "secrets is forbidden"}),
    }))
    assert [p["items"] for p in cluster.pages("/api/v1/pods")] == [[{"metadata": {"name": "a"}}]]
    with pytest.raises(live.ApiError) as caught:
        cluster.call("GET", "/api/v1/secrets")
    assert (caught.value.status, caught.value.message) == (403, "secrets is forbidden")


def test_the_progress_line_is_written_only_to_a_terminal() -> None:
    import io

    from webhook.audit import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        shown = progress.Progress.for_terminal(stream)
        shown.interval = 0
        shown.start("evaluating", total=4)
        for _ in range(4):
            shown.tick("Pod")
        shown.close()
    assert pipe.getvalue() == ""
    assert "\raudit: evaluating 4/4 100% (Pod) " in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")
