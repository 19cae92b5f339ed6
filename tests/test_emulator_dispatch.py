"""Dispatch against purpose-built HTTPS webhooks: reinvocation, answers the API server refuses, the
validating phase, output and exit codes of ``simulate``."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests import emulator_support as es
from webhook.commands import simulate
from webhook.emulator import config

Calls = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> es.Pki:
    return es.make_pki(tmp_path_factory.mktemp("pki"))


def labels_of(review: dict[str, Any]) -> dict[str, str]:
    return dict((review["request"]["object"].get("metadata") or {}).get("labels") or {})


def routes(calls: Calls) -> dict[str, es.Handler]:
    async def add_owner(request: web.Request) -> web.Response:
        """A: labels the pod owner=team-a."""
        review = await request.json()
        calls.append(("A", labels_of(review)))
        if "owner" in labels_of(review):
            return es.answer(review)
        ops = [{"op": "add", "path": "/metadata/labels", "value": {**labels_of(review), "owner": "team-a"}}]
        return es.answer(review, patch=ops)

    async def annotate_owned(request: web.Request) -> web.Response:
        """B: acts only on owned pods, annotating them with their owner."""
        review = await request.json()
        calls.append(("B", labels_of(review)))
        owner = labels_of(review).get("owner")
        annotations = review["request"]["object"]["metadata"].get("annotations") or {}
        if owner is None or annotations.get("owned-by") == owner:
            return es.answer(review)
        return es.answer(
            review, patch=[{"op": "add", "path": "/metadata/annotations", "value": {"owned-by": owner}}]
        )

    async def slow_deny(request: web.Request) -> web.Response:
        review = await request.json()
        await asyncio.sleep(0.4)
        return es.answer(review, allowed=False, status={"message": "slow says no", "code": 403})

    async def fast_deny(request: web.Request) -> web.Response:
        review = await request.json()
        await asyncio.sleep(0.2)
        return es.answer(review, allowed=False, status={"reason": "Forbidden"})

    async def bare_deny(request: web.Request) -> web.Response:
        return es.answer(await request.json(), allowed=False)

    async def advise(request: web.Request) -> web.Response:
        review = await request.json()
        return es.answer(
            review, warnings=["image uses :latest", "image uses :latest"], audit={"checked": "yes"}
        )

    async def patch_without_type(request: web.Request) -> web.Response:
        review = await request.json()
        body = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": review["request"]["uid"],
                "allowed": True,
                "patch": base64.b64encode(b'[{"op":"add","path":"/x","value":1}]').decode(),
            },
        }
        return web.json_response(body)

    async def no_kind(request: web.Request) -> web.Response:
        review = await request.json()
        return web.json_response({"response": {"uid": review["request"]["uid"], "allowed": True}})

    async def not_a_list(request: web.Request) -> web.Response:
        review = await request.json()
        body = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": review["request"]["uid"],
                "allowed": True,
                "patchType": "JSONPatch",
                "patch": base64.b64encode(b'{"op":"add"}').decode(),
            },
        }
        return web.json_response(body)

    async def wrong_type(request: web.Request) -> web.Response:
        review = await request.json()
        return web.json_response(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": review["request"]["uid"], "allowed": "yes"},
            }
        )

    async def always_patch(request: web.Request) -> web.Response:
        return es.answer(await request.json(), patch=[{"op": "add", "path": "/metadata/labels", "value": {}}])

    async def status_503(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "warming up", "code": 503},
            status=503,
        )

    return {
        "/a": add_owner,
        "/b": annotate_owned,
        "/slow-deny": slow_deny,
        "/fast-deny": fast_deny,
        "/bare-deny": bare_deny,
        "/advise": advise,
        "/patch-without-type": patch_without_type,
        "/no-kind": no_kind,
        "/not-a-list": not_a_list,
        "/wrong-type": wrong_type,
        "/503": status_503,
        "/always-patch": always_patch,
    }


@pytest.fixture
async def hooks_server(pki: es.Pki) -> AsyncIterator[tuple[int, Calls]]:
    calls: Calls = []
    async with es.https_server(es.review_app(routes(calls)), pki) as port:
        yield port, calls


def mutating(pki: es.Pki, *hooks: tuple[str, str, dict[str, Any]]) -> config.Loaded:
    return es.load(
        es.configuration(
            "MutatingWebhookConfiguration",
            "m",
            [es.webhook(name, path=path, ca_bundle=pki.ca_bundle, **extra) for name, path, extra in hooks],
        )
    )


def validating(pki: es.Pki, *hooks: tuple[str, str, dict[str, Any]]) -> config.Loaded:
    return es.load(
        es.configuration(
            "ValidatingWebhookConfiguration",
            "v",
            [es.webhook(name, path=path, ca_bundle=pki.ca_bundle, **extra) for name, path, extra in hooks],
        )
    )


# --- reinvocation: B runs before A; A's label is what makes B act ---------------------------------


async def test_if_needed_reinvokes_b_after_a_changes_the_object(
    hooks_server: tuple[int, Calls], pki: es.Pki
) -> None:
    port, calls = hooks_server
    loaded = mutating(pki, ("b.example.com", "/b", {"reinvocation": "IfNeeded"}), ("a.example.com", "/a", {}))
    result = await es.admit(loaded, es.pod(), port)
    assert result.admitted
    assert calls == [("B", {}), ("A", {}), ("B", {"owner": "team-a"})]
    assert result.object is not None
    assert result.object["metadata"]["labels"] == {"owner": "team-a"}
    assert result.object["metadata"]["annotations"] == {"owned-by": "team-a"}
    assert [(w.name, w.round, w.outcome) for w in result.webhooks] == [
        ("b.example.com", 0, "allowed"),
        ("a.example.com", 0, "patched"),
        ("b.example.com", 1, "patched"),
    ]
    assert "patch.webhook.admission.k8s.io/round_1_index_0" in result.audit_annotations


async def test_never_leaves_b_behind(hooks_server: tuple[int, Calls], pki: es.Pki) -> None:
    port, calls = hooks_server
    loaded = mutating(pki, ("b.example.com", "/b", {"reinvocation": "Never"}), ("a.example.com", "/a", {}))
    result = await es.admit(loaded, es.pod(), port)
    assert calls == [("B", {}), ("A", {})]
    assert result.object is not None and "annotations" not in result.object["metadata"]


async def test_a_before_b_needs_no_reinvocation(hooks_server: tuple[int, Calls], pki: es.Pki) -> None:
    port, calls = hooks_server
    loaded = mutating(pki, ("a.example.com", "/a", {"reinvocation": "IfNeeded"}), ("b.example.com", "/b", {}))
    result = await es.admit(loaded, es.pod(), port)
    # B changed the object after A, so A (IfNeeded) runs once more and finds nothing to do.
    assert calls == [("A", {}), ("B", {"owner": "team-a"}), ("A", {"owner": "team-a"})]
    assert result.webhooks[-1].outcome == "allowed" and result.webhooks[-1].round == 1


async def test_a_webhook_skipped_in_round_0_is_not_called_in_round_1(
    hooks_server: tuple[int, Calls], pki: es.Pki
) -> None:
    port, calls = hooks_server
    owned = {"reinvocation": "IfNeeded", "objectSelector": {"matchLabels": {"owner": "team-a"}}}
    loaded = mutating(pki, ("b.example.com", "/b", owned), ("a.example.com", "/a", {}))
    result = await es.admit(loaded, es.pod(), port)
    assert calls == [("A", {})]
    assert result.webhooks[0].outcome == "skipped"


async def test_configurations_run_in_name_order(hooks_server: tuple[int, Calls], pki: es.Pki) -> None:
    port, calls = hooks_server
    loaded = es.load(
        es.configuration(
            "MutatingWebhookConfiguration",
            "zz-first-in-file",
            [es.webhook("b.example.com", path="/b", ca_bundle=pki.ca_bundle)],
        ),
        es.configuration(
            "MutatingWebhookConfiguration",
            "aa-second-in-file",
            [es.webhook("a.example.com", path="/a", ca_bundle=pki.ca_bundle)],
        ),
    )
    await es.admit(loaded, es.pod(), port)
    assert [c[0] for c in calls] == ["A", "B"]


# --- answers the API server refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (
            "/patch-without-type",
            "received invalid webhook response: webhook returned response.patch but not response.patchType",
        ),
        (
            "/no-kind",
            "received invalid webhook response: expected webhook response of admission.k8s.io/v1, "
            "Kind=AdmissionReview, got /, Kind=",
        ),
        (
            "/not-a-list",
            "received undecodable patch in webhook response: json: cannot unmarshal object into Go value "
            "of type jsonpatch.Patch",
        ),
        (
            "/wrong-type",
            "failed to call webhook: json: cannot unmarshal string into Go struct field "
            "AdmissionResponse.response.allowed of type bool",
        ),
        ("/503", "failed to call webhook: warming up"),
    ],
)
async def test_invalid_answers_are_call_failures(
    path: str, reason: str, hooks_server: tuple[int, Calls], pki: es.Pki
) -> None:
    port, _ = hooks_server
    result = await es.admit(mutating(pki, ("x.example.com", path, {})), es.pod(), port)
    assert result.status is not None
    assert (
        result.status.message == f'Internal error occurred: failed calling webhook "x.example.com": {reason}'
    )
    ignored = await es.admit(
        mutating(pki, ("x.example.com", path, {"failure_policy": "Ignore"})), es.pod(), port
    )
    assert ignored.admitted
    assert (
        ignored.audit_annotations["failed-open.mutation.webhook.admission.k8s.io/round_0_index_0"]
        == "x.example.com"
    )


async def test_a_patch_on_delete_is_an_internal_error_even_under_ignore(
    hooks_server: tuple[int, Calls], pki: es.Pki
) -> None:
    port, _ = hooks_server
    rules = [{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]
    loaded = mutating(pki, ("p.example.com", "/always-patch", {"failure_policy": "Ignore", "rules": rules}))
    result = await es.admit(loaded, es.pod(), port, operation="DELETE")
    assert result.status is not None
    assert result.status.message == (
        'Internal error occurred: admission webhook "p.example.com" attempted to '
        "modify the object, which is not supported for this operation"
    )
    assert result.webhooks[0].outcome == "error"


# --- the validating phase ----------------------------------------------------------------------


async def test_validating_webhooks_run_concurrently_and_the_first_rejection_wins(
    hooks_server: tuple[int, Calls], pki: es.Pki
) -> None:
    port, _ = hooks_server
    loaded = validating(pki, ("slow.example.com", "/slow-deny", {}), ("fast.example.com", "/fast-deny", {}))
    started = time.perf_counter()
    result = await es.admit(loaded, es.pod(), port)
    assert time.perf_counter() - started < 0.55  # 0.4 + 0.2 would be 0.6 in series
    assert result.status is not None and result.status.code == 400
    assert result.status.message == 'admission webhook "fast.example.com" denied the request: Forbidden'
    assert sorted(w.outcome for w in result.webhooks) == ["denied", "denied"]


async def test_a_denial_without_message_or_reason(hooks_server: tuple[int, Calls], pki: es.Pki) -> None:
    port, _ = hooks_server
    result = await es.admit(validating(pki, ("bare.example.com", "/bare-deny", {})), es.pod(), port)
    assert result.status is not None
    assert (
        result.status.message == 'admission webhook "bare.example.com" denied the request without explanation'
    )


async def test_warnings_and_audit_annotations(hooks_server: tuple[int, Calls], pki: es.Pki) -> None:
    port, _ = hooks_server
    result = await es.admit(validating(pki, ("advise.example.com", "/advise", {})), es.pod(), port)
    assert result.admitted
    assert result.warnings == ["image uses :latest"]
    assert result.audit_annotations == {"advise.example.com/checked": "yes"}


# --- the simulate command ----------------------------------------------------------------------


def run_simulate(
    tmp_path: Path,
    port: int,
    documents: list[dict[str, Any]],
    *extra: str,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    webhooks = es.write_yaml(tmp_path, *documents)
    obj = tmp_path / "pod.yaml"
    obj.write_text(json.dumps(es.pod()))
    parser = __import__("argparse").ArgumentParser()
    simulate.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "simulate",
            "--webhooks",
            str(webhooks),
            "--object",
            str(obj),
            "--service-address",
            f"testing/hooks=127.0.0.1:{port}",
            *extra,
        ]
    )
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_simulate_json_output_and_exit_codes(
    hooks_server: tuple[int, Calls], pki: es.Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, _ = hooks_server
    allow = [
        es.configuration(
            "MutatingWebhookConfiguration",
            "m",
            [es.webhook("a.example.com", path="/a", ca_bundle=pki.ca_bundle)],
        )
    ]
    code, out, _ = await asyncio.to_thread(
        run_simulate, tmp_path, port, allow, "--output", "json", capsys=capsys
    )
    data = json.loads(out)
    assert code == 0
    assert set(data) == {"admitted", "error", "warnings", "object", "webhooks"}
    assert (data["admitted"], data["error"], data["warnings"]) == (True, None, [])
    assert data["object"]["metadata"]["labels"] == {"owner": "team-a"}
    assert [(w["name"], w["outcome"]) for w in data["webhooks"]] == [("a.example.com", "patched")]
    assert isinstance(data["webhooks"][0]["latency_ms"], float)

    deny = [
        es.configuration(
            "ValidatingWebhookConfiguration",
            "v",
            [es.webhook("bare.example.com", path="/bare-deny", ca_bundle=pki.ca_bundle)],
        )
    ]
    code, out, _ = await asyncio.to_thread(run_simulate, tmp_path, port, deny, capsys=capsys)
    assert code == 1
    assert out.splitlines()[:2] == [
        "REJECTED (HTTP 400)",
        'error: admission webhook "bare.example.com" denied the request without explanation',
    ]


def test_simulate_bad_input_exits_2_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = es.configuration("ValidatingWebhookConfiguration", "v", [es.webhook("x.example.com", timeout=31)])
    code, _, err = run_simulate(tmp_path, 1, [bad], capsys=capsys)
    assert code == 2
    assert err == (
        f"error: {tmp_path / 'webhooks.yaml'}: document 1 (ValidatingWebhookConfiguration 'v'): "
        "webhooks[0].timeoutSeconds: Input should be less than or equal to 30\n"
    )


def test_simulate_requires_a_service_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    documents = [es.configuration("ValidatingWebhookConfiguration", "v", [es.webhook("x.example.com")])]
    webhooks = es.write_yaml(tmp_path, *documents)
    obj = tmp_path / "pod.json"
    obj.write_text(json.dumps(es.pod()))
    parser = __import__("argparse").ArgumentParser()
    simulate.add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulate", "--webhooks", str(webhooks), "--object", str(obj)])
    assert args.func(args) == 2
    assert capsys.readouterr().err == (
        "error: webhook 'x.example.com' calls service testing/hooks port 443: map it "
        "to a local address with --service-address testing/hooks=HOST:PORT\n"
    )
