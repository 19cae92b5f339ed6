"""Webhook configuration files: defaults, API-server validation with file and field named, and the
Go texts (JSON patch v4 errors, quoting, durations, denials) the emulator reproduces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import emulator_support as es
from webhook.emulator import config, jsonpatch, texts


def write(tmp_path: Path, *docs: dict[str, Any]) -> Path:
    return es.write_yaml(tmp_path, *docs)


def test_v1_defaults(tmp_path: Path) -> None:
    hook = {
        "name": "a.example.com",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"namespace": "ns", "name": "svc"}},
    }
    loaded = config.load(write(tmp_path, es.configuration("MutatingWebhookConfiguration", "m", [hook])))
    webhook = loaded.mutating[0].webhook
    assert isinstance(webhook, config.MutatingWebhook)
    assert (
        webhook.failure_policy,
        webhook.match_policy,
        webhook.timeout_seconds,
        webhook.reinvocation_policy,
    ) == ("Fail", "Equivalent", 10, "Never")
    assert webhook.client_config.service is not None and webhook.client_config.service.port == 443
    assert webhook.namespace_selector.empty and webhook.object_selector.empty
    assert loaded.mutating[0].uid == "m/a.example.com/0"


def test_other_kinds_in_the_file_are_skipped(tmp_path: Path) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    validating = es.configuration("ValidatingWebhookConfiguration", "v", [es.webhook("a.example.com")])
    loaded = config.load(write(tmp_path, deployment, validating))
    assert [h.name for h in loaded.validating] == ["a.example.com"]


def label(tmp_path: Path, number: int = 1, name: str = "v") -> str:
    return f"{tmp_path / 'webhooks.yaml'}: document {number} (ValidatingWebhookConfiguration {name!r})"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"timeoutSeconds": 0}, "webhooks[0].timeoutSeconds: Input should be greater than or equal to 1"),
        (
            {"name": "short.name"},
            "webhooks[0].name: should be a domain with at least three segments separated by dots",
        ),
        ({"sideEffects": "Some"}, "webhooks[0].sideEffects: Input should be 'None' or 'NoneOnDryRun'"),
        (
            {"admissionReviewVersions": ["v2"]},
            "webhooks[0].admissionReviewVersions: must include at least one of v1, v1beta1",
        ),
        ({"failurPolicy": "Fail"}, "webhooks[0].failurPolicy: Extra inputs are not permitted"),
        (
            {"reinvocationPolicy": "IfNeeded"},
            "webhooks[0].reinvocationPolicy: Extra inputs are not permitted",
        ),
        (
            {"clientConfig": {"url": "http://x.example.com/v"}},
            "webhooks[0].clientConfig: url: 'https' is the only allowed URL scheme",
        ),
        (
            {"clientConfig": {"url": "https://x.example.com/v?a=b"}},
            "webhooks[0].clientConfig: url: query parameters are not permitted in the URL",
        ),
        ({"clientConfig": {}}, "webhooks[0].clientConfig: exactly one of url or service is required"),
        (
            {"clientConfig": {"service": {"namespace": "n", "name": "s", "path": "v"}}},
            "webhooks[0].clientConfig.service.path: must start with a '/'",
        ),
        (
            {"objectSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            "webhooks[0].objectSelector.matchExpressions[0]: values: must be specified when `operator` is 'In' or 'NotIn'",
        ),
        (
            {
                "rules": [
                    {
                        "operations": ["*", "CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ]
            },
            "webhooks[0].rules[0]: operations: if '*' is present, must not specify other values",
        ),
        (
            {"matchConditions": [{"name": "c", "expression": "object.("}]},
            "webhooks[0]: matchConditions[0].expression: compilation failed: ERROR: <input>:1:8: Syntax error: "
            "no viable alternative at input '.('\n | object.(\n | .......^",
        ),
    ],
)
def test_invalid_configurations_name_file_document_and_field(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    hook = {**es.webhook("a.example.com"), **change}
    with pytest.raises(config.InvalidInput) as caught:
        config.load(write(tmp_path, es.configuration("ValidatingWebhookConfiguration", "v", [hook])))
    assert str(caught.value).startswith(f"{label(tmp_path)}: {problem}")


def test_duplicate_names_and_old_api_versions_are_refused(tmp_path: Path) -> None:
    twice = es.configuration("ValidatingWebhookConfiguration", "v", [es.webhook("a.example.com")] * 2)
    with pytest.raises(config.InvalidInput, match=r"webhooks\[1\].name: Duplicate value: 'a.example.com'"):
        config.load(write(tmp_path, twice))
    old = {
        **es.configuration("ValidatingWebhookConfiguration", "v", []),
        "apiVersion": "admissionregistration.k8s.io/v1beta1",
    }
    with pytest.raises(config.InvalidInput, match="is not served since Kubernetes 1.22"):
        config.load(write(tmp_path, old))


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(config.InvalidInput, match="missing.yaml: cannot read"):
        config.load(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("kind: Service\napiVersion: v1\n")
    with pytest.raises(
        config.InvalidInput, match="holds no MutatingWebhookConfiguration or ValidatingWebhookConfiguration"
    ):
        config.load(tmp_path / "empty.yaml")


POD = {"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"containers": [{"name": "c"}]}}
PATCH_CASES = [
    ([{"op": "add", "path": "/metadata/labels/b", "value": "2"}], None, {"a": "1", "b": "2"}),
    ([{"op": "replace", "path": "/metadata/labels/new", "value": "x"}], None, {"a": "1", "new": "x"}),
    (
        [{"op": "add", "path": "/metadata/annotations/x", "value": "1"}],
        'add operation does not apply: doc is missing path: "/metadata/annotations/x": missing value',
        None,
    ),
    (
        [{"op": "remove", "path": "/metadata/labels/zz"}],
        "error in remove for path: '/metadata/labels/zz': Unable to remove nonexistent key: zz: missing value",
        None,
    ),
    (
        [{"op": "replace", "path": "/metadata/annotations/x", "value": "1"}],
        "replace operation does not apply: doc is missing path: /metadata/annotations/x: missing value",
        None,
    ),
    (
        [{"op": "add", "path": "/spec/containers/5", "value": {}}],
        "error in add for path: '/spec/containers/5': Unable to access invalid index: 5: invalid index referenced",
        None,
    ),
    (
        [{"op": "test", "path": "/metadata/name", "value": "q"}],
        "testing value /metadata/name failed: test failed",
        None,
    ),
    ([{"op": "jump", "path": "/x"}], "Unexpected kind: jump", None),
]


@pytest.mark.parametrize(("ops", "error", "labels"), PATCH_CASES)
def test_json_patch_v4_semantics_and_errors(
    ops: list[dict[str, Any]], error: str | None, labels: Any
) -> None:
    if error is None:
        assert jsonpatch.apply(ops, POD)["metadata"]["labels"] == labels
        return
    with pytest.raises(jsonpatch.PatchError) as caught:
        jsonpatch.apply(ops, POD)
    assert str(caught.value) == error


def test_patch_decoding_errors() -> None:
    with pytest.raises(jsonpatch.PatchError, match="^unexpected end of JSON input$"):
        jsonpatch.decode(b'[{"op":')
    with pytest.raises(
        jsonpatch.PatchError,
        match="^json: cannot unmarshal string into Go value of type jsonpatch.Operation$",
    ):
        jsonpatch.decode(json.dumps(["add"]).encode())


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "1s"), (10, "10s"), (30, "30s"), (60, "1m0s"), (3661, "1h1m1s")]
)
def test_go_duration(seconds: int, text: str) -> None:
    assert texts.go_duration(seconds) == text


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ("", "unexpected end of JSON input"),
        ("nope", "invalid character 'o' in literal null (expecting 'u')"),
        ("<html>", "invalid character '<' looking for beginning of value"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ('{"a": 1} x', "invalid character 'x' after top-level value"),
    ],
)
def test_go_json_syntax_errors(doc: str, error: str) -> None:
    try:
        json.loads(doc)
    except json.JSONDecodeError as exc:
        assert texts.go_json_syntax_error(exc) == error


@pytest.mark.parametrize(
    ("result", "message", "code"),
    [
        ({"message": "no", "code": 403}, 'admission webhook "w.example.com" denied the request: no', 403),
        ({"reason": "Forbidden"}, 'admission webhook "w.example.com" denied the request: Forbidden', 400),
        (None, 'admission webhook "w.example.com" denied the request without explanation', 400),
        ({"code": 200}, 'admission webhook "w.example.com" denied the request without explanation', 400),
    ],
)
def test_denials(result: dict[str, Any] | None, message: str, code: int) -> None:
    status = texts.denied("w.example.com", result)
    assert (status.message, status.code) == (message, code)


def test_a_recorded_review_replays_its_request() -> None:
    from webhook.emulator import attributes

    review = {
        "request": {
            "uid": "x",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "subResource": "scale",
            "namespace": "shop",
            "name": "api",
            "operation": "UPDATE",
            "userInfo": {"username": "alice", "groups": ["dev"]},
            "object": {"kind": "Scale"},
            "oldObject": None,
        }
    }
    attrs = attributes.from_review(review, source="r.json", namespace_labels={"team": "shop"})
    assert (attrs.api_version, attrs.kind, attrs.resource, attrs.subresource) == (
        "apps/v1",
        "Deployment",
        "deployments",
        "scale",
    )
    assert (attrs.namespace, attrs.name, attrs.operation, attrs.user.username) == (
        "shop",
        "api",
        "UPDATE",
        "alice",
    )
    assert attrs.namespace_labels == {"team": "shop", "kubernetes.io/metadata.name": "shop"}
    with pytest.raises(
        config.InvalidInput, match=r"^r.json: request.operation: must be CREATE, UPDATE, DELETE or CONNECT$"
    ):
        attributes.from_review({"request": {**review["request"], "operation": "PATCH"}}, source="r.json")
