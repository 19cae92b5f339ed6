"""The HTTP surface through the real app: answers, versions, bad input (and serving on after it)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests import conftest
from webhook import appstate, config, engine, server, tls
from webhook.policy import files

PRIVILEGED = [{"name": "app", "image": "nginx", "securityContext": {"privileged": True}}]
ClientFactory = Any


def make_app(
    tmp_path: Path,
    body: str = "demoPods: {}\ndemoLabels:\n  labels: {team: core}\n",
    *,
    certificates: tls.CertReloader | None = None,
    **overrides: Any,
) -> web.Application:
    (tmp_path / "p.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n" + body)
    catalog = conftest.make_catalog()
    policy_set = engine.PolicySet(files.load([tmp_path], catalog=catalog), catalog=catalog)
    settings = config.ServeSettings(policies=(tmp_path,), **overrides)
    return server.build_app(settings, policy_set=policy_set, certificates=certificates)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Path) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(make_app(tmp_path, max_body_bytes=64 * 1024))


async def post(client: TestClient, path: str, body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:  # type: ignore[type-arg]
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    resp = await client.post(path, data=data, headers=headers, **kwargs)
    assert resp.content_type == "application/json"
    return resp.status, await resp.json()


async def test_allowed_pod_echoes_uid_and_version(client: TestClient) -> None:  # type: ignore[type-arg]
    review = conftest.admission_review(conftest.pod(), uid="abc-123")
    status, body = await post(client, "/validate?timeout=10s", review)
    assert status == 200
    assert body == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "abc-123", "allowed": True},
    }


async def test_v1beta1_review_is_answered_in_v1beta1(client: TestClient) -> None:  # type: ignore[type-arg]
    review = conftest.admission_review(
        conftest.pod(containers=PRIVILEGED), api_version="admission.k8s.io/v1beta1", uid="u1"
    )
    status, body = await post(client, "/validate", review)
    assert status == 200
    assert body["apiVersion"] == "admission.k8s.io/v1beta1"
    assert body["response"] == {
        "uid": "u1",
        "allowed": False,
        "status": {
            "status": "Failure",
            "code": 403,
            "reason": "Forbidden",
            "message": 'demo-pods.privileged: privileged (container "app" must not set securityContext.privileged=true)',
        },
    }


async def test_mutate_returns_base64_json_patch(client: TestClient) -> None:  # type: ignore[type-arg]
    status, body = await post(client, "/mutate", conftest.admission_review(conftest.pod(), uid="m1"))
    assert status == 200
    response = body["response"]
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == [
        {"op": "add", "path": "/metadata/labels", "value": {"team": "core"}}
    ]


async def test_group_paths_are_served(client: TestClient) -> None:  # type: ignore[type-arg]
    review = conftest.admission_review(conftest.pod(containers=PRIVILEGED))
    assert (await post(client, "/validate/demo-roles", review))[1]["response"]["allowed"] is True
    assert (await post(client, "/validate/demo-pods", review))[1]["response"]["allowed"] is False
    assert (await post(client, "/mutate/demo-labels", review))[1]["response"]["patchType"] == "JSONPatch"


def _review(**request_changes: Any) -> dict[str, Any]:
    review = conftest.admission_review(conftest.pod())
    for key, value in request_changes.items():
        if value is None:
            review["request"].pop(key)
        else:
            review["request"][key] = value
    return review


BAD_INPUTS = [
    ("not JSON", b"{nope", 400, "body is not valid JSON"),
    ("JSON array", b"[1]", 400, "body must be a JSON object (an AdmissionReview), got list"),
    (
        "missing request",
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
        400,
        "request: missing",
    ),
    ("missing uid", _review(uid=None), 400, "request.uid: Field required"),
    ("empty uid", _review(uid=""), 400, "request.uid: String should have at least 1 character"),
    (
        "wrong apiVersion",
        {**_review(), "apiVersion": "admission.k8s.io/v2"},
        400,
        "apiVersion: must be admission.k8s.io/v1 or admission.k8s.io/v1beta1, got 'admission.k8s.io/v2'",
    ),
    ("wrong kind", {**_review(), "kind": "Pod"}, 400, "kind: must be AdmissionReview, got 'Pod'"),
    ("object not a map", _review(object=[1, 2]), 400, "request.object: must be a JSON object"),
    (
        "unknown operation",
        _review(operation="PATCH"),
        400,
        "request.operation: Input should be 'CREATE', 'UPDATE', 'DELETE' or 'CONNECT'",
    ),
]


@pytest.mark.parametrize(("title", "body", "status", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
async def test_bad_input_is_a_json_4xx_and_the_server_keeps_serving(
    client: TestClient,
    title: str,
    body: Any,
    status: int,
    message: str,  # type: ignore[type-arg]
) -> None:
    got_status, got = await post(client, "/validate", body)
    assert got_status == status
    assert message in got["error"]
    good_status, good = await post(client, "/validate", conftest.admission_review(conftest.pod(), uid="next"))
    assert (good_status, good["response"]["uid"]) == (200, "next")


async def test_wrong_content_type_is_400(client: TestClient) -> None:  # type: ignore[type-arg]
    status, body = await post(
        client, "/validate", json.dumps(_review()), headers={"Content-Type": "text/plain"}
    )
    assert (status, body["error"]) == (400, "Content-Type must be application/json, got 'text/plain'")


async def test_oversized_body_is_413(client: TestClient) -> None:  # type: ignore[type-arg]
    review = _review()
    review["request"]["object"]["metadata"]["annotations"] = {"big": "x" * 70_000}
    status, body = await post(client, "/validate", review)
    assert status == 413
    assert "exceeds the limit of 65536 bytes" in body["error"]
    assert (await post(client, "/validate", _review()))[0] == 200


async def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.post("/validate/nope", data=b"{}", headers={"Content-Type": "application/json"})
    assert resp.status == 404
    assert (await resp.json())["error"] == "no such endpoint: POST /validate/nope"
    resp = await client.get("/validate")
    assert resp.status == 405
    assert (await resp.json())["error"] == "Method Not Allowed"


async def test_a_policy_that_raises_is_an_answer_not_a_500(client: TestClient) -> None:  # type: ignore[type-arg]
    status, body = await post(
        client, "/validate", conftest.admission_review(conftest.pod(labels={"crash": "yes"}))
    )
    assert status == 200
    assert body["response"]["allowed"] is False
    assert body["response"]["status"]["message"].startswith(
        'policy "demo-pods.crash" failed to evaluate: RuntimeError: boom'
    )
    text = await (await client.get("/metrics")).text()
    assert 'admission_policy_errors_total{policy="demo-pods.crash"} 1.0' in text


async def test_health_ready_and_metrics(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    await post(client, "/validate", conftest.admission_review(conftest.pod(containers=PRIVILEGED)))
    await post(client, "/validate", b"{")
    text = await (await client.get("/metrics")).text()
    assert (
        'admission_requests_total{decision="denied",kind="Pod",operation="CREATE",path="/validate"} 1.0'
        in text
    )
    assert 'admission_errors_total{path="/validate",type="bad_request"} 1.0' in text
    assert "admission_request_duration_seconds_bucket" in text
    assert "admission_requests_in_flight 0.0" in text
    client.app[appstate.LIFECYCLE].draining = True
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503 and (await not_ready.json())["problems"] == ["draining: shutting down"]


async def test_over_concurrency_limit_gets_429(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    app = make_app(tmp_path, max_concurrent=1)
    client = await aiohttp_client(app)
    slots = app[appstate.LIMITER]
    slots.taken += 1  # a review in progress
    try:
        status, body = await post(client, "/validate", _review())
    finally:
        slots.taken -= 1
    assert (status, body["error"]) == (429, "too many concurrent reviews (limit 1); retry")
    assert slots.taken == 0  # the refused review took no slot
    status, _ = await post(client, "/validate", _review())
    assert status == 200 and slots.taken == 0  # an answered one gave its slot back


def test_timeout_query_parameter_is_read_as_a_go_duration() -> None:
    assert appstate.parse_duration("10s") == 10
    assert appstate.parse_duration("500ms") == 0.5
    assert appstate.parse_duration("1m0s") == 60
    assert appstate.parse_duration("1.5s") == 1.5
    assert appstate.parse_duration(None) is None
    assert appstate.parse_duration("junk") is None
    assert appstate.parse_duration("10s junk") is None


async def test_policy_reload_swaps_good_files_and_keeps_serving_on_broken_ones(
    aiohttp_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = conftest.make_catalog()
    monkeypatch.setattr(
        server.catalog,
        "load",
        lambda paths, overrides=(), kubernetes_minor=None: engine.PolicySet(files.load(list(paths), catalog=catalog),
                                                                            catalog=catalog),
    )
    app = make_app(tmp_path, "demoPods:\n  mode: enforce\n")
    client = await aiohttp_client(app)
    bad = conftest.admission_review(conftest.pod(containers=PRIVILEGED))
    assert (await post(client, "/validate", bad))[1]["response"]["allowed"] is False

    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\ndemoPods:\n  mode: warn\n")
    assert await server.reload_policies(app) is True
    answer = (await post(client, "/validate", bad))[1]["response"]
    assert answer["allowed"] is True and answer["warnings"][0].startswith("demo-pods.privileged")

    policy.write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\ndemoPods:\n  mode: loud\n")
    assert await server.reload_policies(app) is False
    ready = await (await client.get("/readyz")).json()
    assert f"{policy}:4: demoPods.mode: Input should be" in ready["policies"]["reloadError"]
    assert (await post(client, "/validate", bad))[1]["response"]["allowed"] is True  # old set still serving
    metrics_text = await (await client.get("/metrics")).text()
    assert 'admission_policy_reloads_total{result="error"} 1.0' in metrics_text
    assert "admission_policy_config_valid 0.0" in metrics_text


async def test_serve_faults_file_injects_failures_only_when_given(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    (tmp_path / "faults").mkdir()
    fault_file = tmp_path / "faults" / "faults.yaml"
    fault_file.write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: FaultInjection\n"
        "paths:\n  /validate/demo-pods: {errorRate: 1.0, failure: http500}\n"
    )
    faulty = await aiohttp_client(make_app(tmp_path, faults=fault_file))
    resp = await faulty.post("/validate/demo-pods", data=json.dumps(_review()), headers={"Content-Type": "application/json"})
    assert resp.status == 500
    assert (await post(faulty, "/validate/demo-roles", _review()))[0] == 200  # other paths unaffected

    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain = await aiohttp_client(make_app(plain_dir))
    assert (await post(plain, "/validate/demo-pods", _review()))[0] == 200


async def test_review_log_line_truncates_caller_controlled_fields(
    client: TestClient, capsys: pytest.CaptureFixture[str]  # type: ignore[type-arg]
) -> None:
    from webhook import logs

    logs.configure(log_format="json")
    obj = conftest.pod("n" * 5000)
    await post(client, "/validate", conftest.admission_review(obj, uid="u" * 1000))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"review"' in line]
    assert len(lines) == 1
    line = lines[0]
    assert line["name"] == "n" * 256 + "...(+4744 chars)"
    assert line["uid"] == "u" * 256 + "...(+744 chars)"
    assert {"kind", "namespace", "operation", "user", "decision", "patch_ops", "latency_ms"} <= set(line)


async def test_policy_watcher_reloads_a_changed_directory_by_itself(
    aiohttp_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    catalog = conftest.make_catalog()
    monkeypatch.setattr(
        server.catalog,
        "load",
        lambda paths, overrides=(), kubernetes_minor=None: engine.PolicySet(files.load(list(paths), catalog=catalog),
                                                                            catalog=catalog),
    )
    policy = tmp_path / "p.yaml"
    policy.write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\ndemoPods:\n  mode: enforce\n")
    app = server.build_app(config.ServeSettings(policies=(tmp_path,), reload_interval=0.05))
    client = await aiohttp_client(app)
    bad = conftest.admission_review(conftest.pod(containers=PRIVILEGED))
    assert (await post(client, "/validate", bad))[1]["response"]["allowed"] is False

    # A ConfigMap update: the new content appears under a new name and the old file goes away.
    (tmp_path / "q.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\ndemoPods:\n  mode: warn\n")
    policy.unlink()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if app[appstate.POLICIES].current.config.sources == (str(tmp_path / "q.yaml"),):
            break
    answer = (await post(client, "/validate", bad))[1]["response"]
    assert answer["allowed"] is True and answer["warnings"][0].startswith("demo-pods.privileged")


async def test_expired_certificate_fails_readyz_and_metrics_show_its_expiry(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    import datetime

    from webhook import certs

    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    certs.ensure(tmp_path / "certs", service="admission-webhook", namespace="admission-webhook", days=1, now=long_ago)
    cert, key = tmp_path / "certs" / "tls.crt", tmp_path / "certs" / "tls.key"
    context = tls.server_context(cert=cert, key=key)
    app = make_app(tmp_path, reload_interval=0.05, certificates=tls.CertReloader(context, cert=cert, key=key))
    client = await aiohttp_client(app)
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["problems"] == ["serving certificate has expired"]
    text = await (await client.get("/metrics")).text()
    expiry = next(line for line in text.splitlines() if line.startswith("admission_certificate_expiry_seconds "))
    assert float(expiry.split()[1]) < -28 * 24 * 3600  # expired about 29 days ago


async def test_metric_labels_stay_bounded_whatever_callers_send(client: TestClient) -> None:  # type: ignore[type-arg]
    for i in range(20):
        await client.post(f"/nope/{i}", data=b"{}", headers={"Content-Type": "application/json"})
        odd = conftest.admission_review(conftest.pod(), kind=f"Weird{i}")
        await post(client, "/validate", odd)
    text = await (await client.get("/metrics")).text()
    assert 'admission_errors_total{path="unmatched",type="http_404"} 20.0' in text
    assert 'admission_requests_total{decision="allowed",kind="other",operation="CREATE",path="/validate"} 20.0' in text
    assert "Weird" not in text and "/nope/" not in text


async def test_errors_quote_caller_values_briefly(client: TestClient) -> None:  # type: ignore[type-arg]
    status, body = await post(client, "/validate", {**_review(), "apiVersion": "v" * 50_000})
    assert status == 400
    assert len(body["error"]) < 400 and "(50002 chars)" in body["error"]
