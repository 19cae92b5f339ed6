"""The real server with injected faults, called through the emulator: each failure kind under
failurePolicy Fail and Ignore gives the API server's outcome and error text."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import conftest
from tests import emulator_support as es
from webhook import config, engine, faults, server
from webhook.emulator import dispatcher
from webhook.policy import files

POLICY = "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\ndemoPods: {}\ndemoLabels:\n  labels: {team: core}\n"
URL = "https://hooks.testing.svc:443"
PRIVILEGED = [{"name": "app", "image": "nginx", "securityContext": {"privileged": True}}]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> es.Pki:
    return es.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def served(tmp_path: Path, pki: es.Pki) -> AsyncIterator[tuple[int, faults.State]]:
    """The real app (demo catalogue: /validate denies privileged pods, /mutate adds team=core), wired
    for fault injection as ``serve --faults`` builds it."""
    (tmp_path / "p.yaml").write_text(POLICY)
    catalog = conftest.make_catalog()
    policy_set = engine.PolicySet(files.load([tmp_path], catalog=catalog), catalog=catalog)
    state = faults.State()
    app = server.build_app(config.ServeSettings(policies=(tmp_path,)), policy_set=policy_set, faults=state)
    async with es.https_server(app, pki) as port:
        yield port, state


def inject(state: faults.State, path: str, **fault: Any) -> None:
    state.replace(faults.FaultFile(paths={path: faults.FaultConfig(**fault)}))


def hooks(kind: str, pki: es.Pki, policy: str, *, path: str, bundle: str | None = None, **extra: Any) -> Any:
    return es.load(
        es.configuration(
            kind,
            "c",
            [
                es.webhook(
                    "hook.example.com",
                    path=path,
                    ca_bundle=bundle or pki.ca_bundle,
                    failure_policy=policy,
                    timeout=1,
                    **extra,
                )
            ],
        )
    )


def validating(pki: es.Pki, policy: str, **extra: Any) -> Any:
    return hooks("ValidatingWebhookConfiguration", pki, policy, path="/validate", **extra)


def mutating(pki: es.Pki, policy: str, **extra: Any) -> Any:
    return hooks("MutatingWebhookConfiguration", pki, policy, path="/mutate", **extra)


def calling(reason: str) -> str:
    return f'Internal error occurred: failed calling webhook "hook.example.com": {reason}'


# failure type -> the reason after `failed calling webhook "hook.example.com": ` (a regex)
CALL_FAILURES = {
    "http500": re.escape(
        'failed to call webhook: an error on the server ("fault injected: HTTP 500") '
        "has prevented the request from succeeding"
    ),
    "reset": re.escape(f'failed to call webhook: Post "{URL}/validate?timeout=1s": ')
    + r"read tcp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: read: connection reset by peer",
    "hang": re.escape(f'failed to call webhook: Post "{URL}/validate?timeout=1s": context deadline exceeded'),
    "malformed": re.escape(
        "failed to call webhook: couldn't get version/kind; json parse error: unexpected end of JSON input"
    ),
    "wrong_uid": r'received invalid webhook response: expected response\.uid="[0-9a-f-]{36}", got "[0-9a-f-]{36}"',
    "invalid_patch": re.escape(
        "received invalid webhook response: validating webhook may not return response.patch"
    ),
}


@pytest.mark.parametrize("failure", sorted(CALL_FAILURES))
async def test_call_failure_fails_closed_under_fail(
    failure: str, served: tuple[int, faults.State], pki: es.Pki
) -> None:
    port, state = served
    inject(state, "/validate", failure=failure)
    result = await es.admit(validating(pki, "Fail"), es.pod(), port)
    assert not result.admitted
    assert result.status is not None and result.status.code == 500
    assert re.fullmatch(re.escape(calling("")) + CALL_FAILURES[failure], result.status.message), (
        result.status.message
    )
    assert [(w.name, w.outcome) for w in result.webhooks] == [("hook.example.com", "failed-closed")]


@pytest.mark.parametrize("failure", sorted(CALL_FAILURES))
async def test_call_failure_fails_open_under_ignore(
    failure: str, served: tuple[int, faults.State], pki: es.Pki
) -> None:
    port, state = served
    inject(state, "/validate", failure=failure)
    result = await es.admit(validating(pki, "Ignore"), es.pod(), port)
    assert result.admitted and result.status is None
    assert result.object == es.pod()
    assert [(w.name, w.outcome) for w in result.webhooks] == [("hook.example.com", "failed-open")]
    assert re.fullmatch(
        re.escape('failed calling webhook "hook.example.com": ') + CALL_FAILURES[failure],
        result.webhooks[0].detail,
    )
    assert result.audit_annotations == {
        "failed-open.validating.webhook.admission.k8s.io/round_0_index_0": "hook.example.com"
    }


async def test_hang_is_cut_at_timeout_seconds(served: tuple[int, faults.State], pki: es.Pki) -> None:
    port, state = served
    inject(state, "/validate", failure="hang")
    result = await es.admit(validating(pki, "Ignore"), es.pod(), port)
    assert 1000 <= result.webhooks[0].latency_ms < 1500


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_slow_under_the_timeout_is_answered(
    policy: str, served: tuple[int, faults.State], pki: es.Pki
) -> None:
    port, state = served
    inject(state, "/validate", delay=faults.Delay(fixed=0.3))
    result = await es.admit(validating(pki, policy), es.pod(), port)
    assert result.admitted
    assert result.webhooks[0].outcome == "allowed"
    assert 300 <= result.webhooks[0].latency_ms < 1000


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_slow_over_the_timeout_meets_the_servers_own_deadline(
    policy: str, served: tuple[int, faults.State], pki: es.Pki
) -> None:
    """A delay is slowness inside the server, so the deadline middleware answers 504 at 0.9 s of
    the caller's 1 s; the API server words a 504 as client-go does, and failurePolicy decides."""
    port, state = served
    inject(state, "/validate", delay=faults.Delay(fixed=1.4))
    result = await es.admit(validating(pki, policy), es.pod(), port)
    assert result.admitted is (policy == "Ignore")
    expected = calling(
        "failed to call webhook: the server was unable to return a response in the time allotted, "
        "but may still be processing the request"
    )
    assert (result.status.message if result.status else result.webhooks[0].detail) == expected.removeprefix(
        "Internal error occurred: " if policy == "Ignore" else ""
    )
    assert 900 <= result.webhooks[0].latency_ms < 1000


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_server_down(policy: str, pki: es.Pki) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    result = await es.admit(validating(pki, policy), es.pod(), closed_port)
    assert result.admitted is (policy == "Ignore")
    reason = (
        f'failed to call webhook: Post "{URL}/validate?timeout=1s": '
        f"dial tcp 127.0.0.1:{closed_port}: connect: connection refused"
    )
    assert result.webhooks[0].detail == f'failed calling webhook "hook.example.com": {reason}'
    if policy == "Fail":
        assert result.status is not None and result.status.message == calling(reason)


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_untrusted_certificate(policy: str, served: tuple[int, faults.State], pki: es.Pki) -> None:
    port, _ = served
    result = await es.admit(validating(pki, policy, bundle=pki.other_bundle), es.pod(), port)
    assert result.admitted is (policy == "Ignore")
    assert result.webhooks[0].detail == (
        f'failed calling webhook "hook.example.com": failed to call webhook: Post "{URL}/validate?timeout=1s": '
        "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    )


async def test_certificate_for_another_host(served: tuple[int, faults.State], pki: es.Pki) -> None:
    port, _ = served
    loaded = es.load(
        es.configuration(
            "ValidatingWebhookConfiguration",
            "c",
            [
                es.webhook(
                    "hook.example.com",
                    url="https://hooks.elsewhere.svc:8443/validate",
                    ca_bundle=pki.ca_bundle,
                    timeout=2,
                )
            ],
        )
    )
    attrs = es.attributes.from_object(es.pod(), source="test")
    result = await dispatcher.admit(
        loaded,
        attrs,
        resolve=lambda hook: es.caller.target(
            hook.webhook.client_config,
            webhook=hook.name,
            service_addresses={},
            resolve={"hooks.elsewhere.svc:8443": f"127.0.0.1:{port}"},
        ),
    )
    assert result.status is not None
    assert result.status.message == calling(
        'failed to call webhook: Post "https://hooks.elsewhere.svc:8443/validate?timeout=2s": tls: failed to verify '
        "certificate: x509: certificate is valid for hooks.testing.svc, localhost, not hooks.elsewhere.svc"
    )


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_a_denial_rejects_whatever_the_failure_policy(
    policy: str, served: tuple[int, faults.State], pki: es.Pki
) -> None:
    port, _ = served
    result = await es.admit(validating(pki, policy), conftest.pod(containers=PRIVILEGED), port)
    assert not result.admitted
    assert result.status is not None and result.status.code == 403
    assert result.status.message == (
        'admission webhook "hook.example.com" denied the request: demo-pods.privileged: privileged '
        '(container "app" must not set securityContext.privileged=true)'
    )
    assert result.webhooks[0].outcome == "denied"


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
async def test_a_patch_that_does_not_apply_rejects_whatever_the_failure_policy(
    policy: str, served: tuple[int, faults.State], pki: es.Pki
) -> None:
    port, state = served
    inject(state, "/mutate", failure="invalid_patch")
    result = await es.admit(mutating(pki, policy), es.pod(), port)
    assert not result.admitted
    assert result.status is not None and result.status.message == (
        'Internal error occurred: add operation does not apply: doc is missing path: "/faultInjection/missing": '
        "missing value"
    )
    assert result.webhooks[0].outcome == "error"


async def test_the_real_mutation_is_applied(served: tuple[int, faults.State], pki: es.Pki) -> None:
    port, _ = served
    result = await es.admit(mutating(pki, "Fail"), es.pod(), port)
    assert result.admitted
    assert result.object is not None and result.object["metadata"]["labels"] == {"team": "core"}
    assert result.audit_annotations["mutation.webhook.admission.k8s.io/round_0_index_0"] == (
        '{"configuration":"c","mutated":true,"webhook":"hook.example.com"}'
    )


async def test_error_rate_zero_never_fails(served: tuple[int, faults.State], pki: es.Pki) -> None:
    port, state = served
    inject(state, "/validate", failure="http500", error_rate=0.0)
    result = await es.admit(validating(pki, "Fail"), es.pod(), port)
    assert result.admitted


def wrapped(bundle: str, *, width: int = 76, newline: str = "\n") -> str:
    """``bundle`` cut into lines of ``width`` characters, as kustomize writes long base64 values."""
    return "".join(bundle[i : i + width] + newline for i in range(0, len(bundle), width))


class LiteralBlocks(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` literal blocks, the shape ``kubectl kustomize`` prints."""


LiteralBlocks.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


async def test_a_ca_bundle_wrapped_at_76_columns_in_a_literal_block_is_trusted(
    served: tuple[int, faults.State], pki: es.Pki, tmp_path: Path
) -> None:
    port, _ = served
    bundle = wrapped(pki.ca_bundle)
    assert len(bundle.splitlines()) > 2 and max(len(line) for line in bundle.splitlines()) == 76
    document = es.configuration(
        "ValidatingWebhookConfiguration", "c", [es.webhook("hook.example.com", ca_bundle=bundle, timeout=1)]
    )
    path = tmp_path / "kustomized.yaml"
    path.write_text(yaml.dump(document, Dumper=LiteralBlocks, sort_keys=False))
    assert "caBundle: |\n" in path.read_text()
    result = await es.admit(es.config.load(path), es.pod(), port)
    assert result.admitted and result.status is None
    assert [(w.name, w.outcome) for w in result.webhooks] == [("hook.example.com", "allowed")]


async def test_a_ca_bundle_wrapped_with_crlf_is_trusted(served: tuple[int, faults.State], pki: es.Pki) -> None:
    port, _ = served
    result = await es.admit(validating(pki, "Fail", bundle=wrapped(pki.ca_bundle, newline="\r\n")), es.pod(), port)
    assert result.admitted
    assert [(w.name, w.outcome) for w in result.webhooks] == [("hook.example.com", "allowed")]


@pytest.mark.parametrize("separator", [" ", "\t", "!"])
async def test_a_ca_bundle_with_other_stray_characters_is_still_not_pem(
    separator: str, served: tuple[int, faults.State], pki: es.Pki
) -> None:
    port, _ = served
    bundle = wrapped(pki.ca_bundle, newline=separator)
    result = await es.admit(validating(pki, "Fail", bundle=bundle), es.pod(), port)
    assert result.status is not None and result.status.message == calling(
        "could not get REST client: unable to load root certificates: unable to parse bytes as PEM block"
    )
    assert [(w.name, w.outcome) for w in result.webhooks] == [("hook.example.com", "failed-closed")]
