"""Helpers for the emulator tests: a throwaway CA, real HTTPS webhook servers, configuration builders."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import json
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from webhook import certs
from webhook.emulator import attributes, caller, config, dispatcher  # noqa: F401 - re-exported for tests

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    cert_file: Path
    key_file: Path
    other_ca_pem: bytes
    """A CA that did not sign the server certificate (the "bad TLS" case)."""

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_pem).decode()

    @property
    def other_bundle(self) -> str:
        return base64.b64encode(self.other_ca_pem).decode()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def make_pki(directory: Path, *, dns_names: tuple[str, ...] = ("hooks.testing.svc", "localhost")) -> Pki:
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca, ca_key = certs.issue_ca(name=name("emulator test CA"))
    other, _ = certs.issue_ca(name=name("some other CA"))
    leaf, leaf_key = certs.issue_leaf(
        ca, ca_key=ca_key, dns_names=list(dns_names), ips=[ipaddress.ip_address("127.0.0.1")]
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(certs.cert_pem(leaf, ca))
    key_file.write_bytes(certs.key_pem(leaf_key))
    return Pki(
        ca_pem=certs.cert_pem(ca), cert_file=cert_file, key_file=key_file, other_ca_pem=certs.cert_pem(other)
    )


@contextlib.asynccontextmanager
async def https_server(app: web.Application, pki: Pki) -> AsyncIterator[int]:
    """Serve ``app`` over HTTPS on 127.0.0.1 at a free port; yields the port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.server_context())
    await site.start()
    port: int = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


def review_app(routes: dict[str, Handler]) -> web.Application:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_post(path, handler)
    return app


def answer(
    review: dict[str, Any],
    *,
    allowed: bool = True,
    patch: list[dict[str, Any]] | None = None,
    status: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
    audit: dict[str, str] | None = None,
) -> web.Response:
    """A well-formed v1 answer to ``review``."""
    response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": allowed}
    if patch is not None:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if status is not None:
        response["status"] = status
    if warnings:
        response["warnings"] = warnings
    if audit:
        response["auditAnnotations"] = audit
    return web.json_response(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    )


def webhook(
    name: str,
    *,
    path: str = "/validate",
    ca_bundle: str | None = None,
    url: str | None = None,
    failure_policy: str = "Fail",
    timeout: int | None = None,
    rules: list[dict[str, Any]] | None = None,
    reinvocation: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One webhook entry calling service ``testing/hooks`` (or ``url``)."""
    client: dict[str, Any] = (
        {"url": url} if url else {"service": {"namespace": "testing", "name": "hooks", "path": path}}
    )
    if ca_bundle:
        client["caBundle"] = ca_bundle
    hook: dict[str, Any] = {
        "name": name,
        "clientConfig": client,
        "failurePolicy": failure_policy,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "rules": rules
        if rules is not None
        else [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
    }
    if timeout is not None:
        hook["timeoutSeconds"] = timeout
    if reinvocation is not None:
        hook["reinvocationPolicy"] = reinvocation
    hook.update(extra)
    return hook


def configuration(kind: str, name: str, hooks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": hooks,
    }


def write_yaml(directory: Path, *documents: dict[str, Any], name: str = "webhooks.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump_all(documents))
    return path


def load(*documents: dict[str, Any]) -> config.Loaded:
    with tempfile.TemporaryDirectory() as tmp:
        return config.load(write_yaml(Path(tmp), *documents))


def pod(
    name: str = "web", *, namespace: str = "default", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
    }


def resolver(port: int) -> dispatcher.Resolve:
    def resolve(hook: config.Hook) -> caller.Target:
        return caller.target(
            hook.webhook.client_config,
            webhook=hook.name,
            service_addresses={"testing/hooks": f"127.0.0.1:{port}"},
        )

    return resolve


async def admit(loaded: config.Loaded, obj: dict[str, Any], port: int, **kwargs: Any) -> dispatcher.Result:
    attrs = attributes.from_object(obj, source="test", **kwargs)
    return await dispatcher.admit(loaded, attrs, resolve=resolver(port))
