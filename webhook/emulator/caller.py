"""Calling one webhook over HTTPS the way the API server's webhook REST client does.

* The URL: ``clientConfig.url`` as given, or ``https://NAME.NS.svc:PORT/PATH`` for a service, plus
  ``?timeout=`` with ``timeoutSeconds`` as a Go duration (``10s``). A service is dialled at the
  address mapped with ``--service-address ns/name=HOST:PORT`` (the API server resolves it to an
  endpoint the same way: the URL keeps the service name, the dial goes to the endpoint).
* TLS: the server certificate must chain to ``caBundle`` (system roots when empty) and be valid
  for the host name (``NAME.NS.svc`` for a service). Failures read as Go's ``crypto/x509`` does,
  in Go's order: validity period, then host name, then issuer.
* The whole call (connect, TLS, request, answer) has ``timeoutSeconds``; past it the error is
  ``context deadline exceeded``, as the API server's per-webhook context reports.

Every failure raises :class:`CallFailed` with the text after ``failed calling webhook "NAME": ``,
which the dispatcher treats under ``failurePolicy``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime
import errno
import ipaddress
import json
import posixpath
import re
import socket
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
from cryptography import x509

from webhook import gotext
from webhook.emulator import attributes, config, response, texts

USER_AGENT = "kube-apiserver-admission"


class CallFailed(Exception):
    """``ErrCallingWebhook``: the webhook could not be called or its answer is unusable."""


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    url: str
    """What the API server would request and print, without ``?timeout=``."""
    host: str
    """Host name the certificate must be valid for (and SNI)."""
    dial: tuple[str, int]
    """Address actually connected to."""


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    uid: str
    verified: response.Verified
    latency_ms: float


def _clean_path(path: str) -> str:
    # rest.Config.APIPath goes through path.Join("/", ...): duplicate and trailing slashes vanish.
    return posixpath.normpath("/" + re.sub("/+", "/", path)).replace("//", "/") if path else "/"


def _split_address(text: str, *, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise config.InvalidInput(f"{what}: {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def target(
    client: config.ClientConfig,
    *,
    webhook: str,
    service_addresses: Mapping[str, str],
    resolve: Mapping[str, str] | None = None,
) -> Target:
    """Where ``client`` points, with services and (optionally) URL hosts mapped to local addresses."""
    if client.service is not None:
        svc = client.service
        host = f"{svc.name}.{svc.namespace}.svc"
        key = f"{svc.namespace}/{svc.name}"
        if key not in service_addresses:
            raise config.InvalidInput(
                f"webhook {webhook!r} calls service {key} port {svc.port}: map it to a local address with "
                f"--service-address {key}=HOST:PORT"
            )
        dial = _split_address(service_addresses[key], what=f"--service-address {key}")
        return Target(url=f"https://{host}:{svc.port}{_clean_path(svc.path or '')}", host=host, dial=dial)
    assert client.url is not None
    parts = urllib.parse.urlsplit(client.url)
    host = parts.hostname or ""
    port = parts.port or 443
    mapped = (resolve or {}).get(f"{host}:{port}")
    dial = _split_address(mapped, what=f"--resolve {host}:{port}") if mapped else (host, port)
    path = _clean_path(parts.path)
    return Target(url=f"https://{parts.netloc}{path}", host=host, dial=dial)


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Trust ``caBundle`` (base64 of PEM) or, when empty, the system roots. A bundle holding no
    certificate fails the call as the API server's client manager does (under failurePolicy).

    The API server decodes the ``[]byte`` field with Go's ``encoding/base64``, which skips CR and
    LF (and nothing else): a bundle wrapped at 76 columns, as kustomize writes long base64 values
    in a literal block, is accepted; any other stray character still fails."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not ca_bundle:
        context.load_default_certs()
        return context
    try:
        unwrapped = ca_bundle.replace("\r", "").replace("\n", "")
        pem = base64.b64decode(unwrapped, validate=True).decode("ascii")
        context.load_verify_locations(cadata=pem)
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError):
        raise CallFailed(
            "could not get REST client: unable to load root certificates: unable to parse bytes as PEM block"
        ) from None
    return context


def _go_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _peer_certificate(target: Target) -> x509.Certificate | None:
    """The server's leaf certificate, fetched without verification, to word a TLS failure like Go."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(2):
            _, writer = await asyncio.open_connection(*target.dial, ssl=context, server_hostname=target.host)
    except (OSError, TimeoutError):
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der) if der else None
    finally:
        writer.transport.abort()  # no TLS close_notify dance: the loop may end right after


def _hostname_error(cert: x509.Certificate, host: str) -> str | None:
    """Go's ``x509.HostnameError`` text when ``cert`` is not valid for ``host``, else None."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = sans.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    try:
        wanted = ipaddress.ip_address(host)
    except ValueError:
        wanted = None
    if wanted is not None:
        if str(wanted) in ips:
            return None
        if not ips:
            return f"x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
        return f"x509: certificate is valid for {', '.join(ips)}, not {host}"
    if any(_dns_match(name, host) for name in dns):
        return None
    if not dns:
        return f"x509: certificate is not valid for any names, but wanted to match {host}"
    return f"x509: certificate is valid for {', '.join(dns)}, not {host}"


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


async def _tls_failure(target: Target, exc: ssl.SSLCertVerificationError) -> str:
    cert = await _peer_certificate(target)
    detail = "x509: certificate signed by unknown authority"
    if cert is not None:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        if now > cert.not_valid_after_utc:
            detail = (
                "x509: certificate has expired or is not yet valid: current time "
                f"{now.strftime(fmt)} is after {cert.not_valid_after_utc.strftime(fmt)}"
            )
        elif now < cert.not_valid_before_utc:
            detail = (
                "x509: certificate has expired or is not yet valid: current time "
                f"{now.strftime(fmt)} is before {cert.not_valid_before_utc.strftime(fmt)}"
            )
        else:
            detail = _hostname_error(cert, target.host) or detail
    elif exc.verify_code not in (2, 18, 19, 20, 21):
        detail = f"x509: {exc.verify_message}"
    return f"tls: failed to verify certificate: {detail}"


class _LocalAddress:
    """Remembers the local address of the one connection a call makes (for ``read tcp A->B`` texts)."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.address = ""

    def factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=kind, proto=proto)
        self.sockets.append(sock)
        return sock

    async def on_connected(self, *_: Any) -> None:
        for sock in self.sockets:
            try:
                host, port = sock.getsockname()[:2]
                self.address = _go_addr(host, port)
            except OSError:
                continue


async def _transport_error(exc: BaseException, target: Target, local: _LocalAddress) -> str:
    remote = _go_addr(*target.dial)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        if isinstance(cert_error, ssl.SSLCertVerificationError):
            return await _tls_failure(target, cert_error)
        return f"tls: {cert_error}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError):
        reason = getattr(exc.__cause__ or exc, "reason", None) or str(exc)
        if "WRONG_VERSION_NUMBER" in str(reason) or "record layer failure" in str(reason):
            return "http: server gave HTTP response to HTTPS client"
        return f"remote error: tls: {str(reason).lower().replace('_', ' ')}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"dial tcp: lookup {target.dial[0]}: no such host"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED:
            return f"dial tcp {remote}: connect: connection refused"
        return f"dial tcp {remote}: connect: {(os_error.strerror or str(os_error)).lower()}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "EOF"
    if (
        isinstance(exc, aiohttp.ClientOSError | ConnectionResetError)
        and getattr(exc, "errno", None) in (errno.ECONNRESET, None)
        and "reset" in str(exc).lower()
    ):
        return f"read tcp {local.address or '?'}->{remote}: read: connection reset by peer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "unexpected EOF"
    return str(exc) or type(exc).__name__


def review_version(webhook: config.ValidatingWebhook) -> str:
    """The first of ``admissionReviewVersions`` the API server speaks (``CreateAdmissionObjects``)."""
    for version in webhook.admission_review_versions:
        if version in config.SUPPORTED_REVIEW_VERSIONS:
            return f"admission.k8s.io/{version}"
    raise CallFailed(
        "could not create admission objects: webhook does not accept known AdmissionReview "
        "versions (v1, v1beta1)"
    )


async def call(
    webhook: config.ValidatingWebhook,
    attrs: attributes.Attributes,
    *,
    to: Target,
) -> Answer:
    """One call: send a fresh AdmissionReview, return the verified answer or raise :class:`CallFailed`.

    One session and connection per call; closing the session aborts the TLS connection at once, so
    nothing is left half-closed when the caller's event loop ends.
    """
    api_version = review_version(webhook)
    uid = str(uuid.uuid4())
    body = json.dumps({"apiVersion": api_version, "kind": "AdmissionReview", "request": attrs.request(uid)})
    context = tls_context(webhook.client_config.ca_bundle)
    timeout = texts.go_duration(webhook.timeout_seconds)
    shown = f"{to.url}?timeout={timeout}"
    request_url = f"https://{_go_addr(*to.dial)}{urllib.parse.urlsplit(to.url).path}?timeout={timeout}"
    local = _LocalAddress()
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(local.on_connected)
    connector = aiohttp.TCPConnector(ssl=context, socket_factory=local.factory)
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, */*",
        "User-Agent": USER_AGENT,
        "Host": urllib.parse.urlsplit(to.url).netloc,
    }
    started = time.perf_counter()
    try:
        async with (
            asyncio.timeout(webhook.timeout_seconds),
            aiohttp.ClientSession(
                connector=connector, trace_configs=[trace], timeout=aiohttp.ClientTimeout(total=None)
            ) as session,
            session.post(request_url, data=body, headers=headers, server_hostname=to.host) as resp,
        ):
            status, content_type, payload = (
                resp.status,
                resp.headers.get("Content-Type", ""),
                await resp.read(),
            )
    except TimeoutError:
        raise CallFailed(
            f"failed to call webhook: Post {gotext.quote(shown)}: context deadline exceeded"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = await _transport_error(exc, to, local)
        raise CallFailed(f"failed to call webhook: Post {gotext.quote(shown)}: {reason}") from None
    latency_ms = (time.perf_counter() - started) * 1000
    if not 200 <= status <= 206:
        raise CallFailed(
            "failed to call webhook: "
            + response.error_status(payload, status=status, content_type=content_type)
        )
    try:
        review = response.decode(payload, status=status, content_type=content_type)
        verified = response.verify(
            review, uid=uid, mutating=isinstance(webhook, config.MutatingWebhook), api_version=api_version
        )
    except response.InvalidResponse as exc:
        raise CallFailed(str(exc)) from None
    return Answer(uid=uid, verified=verified, latency_ms=latency_ms)
