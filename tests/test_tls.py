"""``webhook.tls`` against a real aiohttp HTTPS server on 127.0.0.1: reload without downtime, mTLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509

from webhook import certs, errors, tls

LOCALHOST = [certs.ipaddress.ip_address("127.0.0.1")]


class Pki:
    """A CA in memory and helpers to write leaf pairs the way kubelet updates a Secret volume."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca, self.ca_key = certs.issue_ca(
            name=certs.ca_name("webhook", "test", datetime.datetime.now(datetime.UTC))
        )
        self.ca_file = root / "ca.crt"
        self.ca_file.write_bytes(certs.cert_pem(self.ca))
        self.secret = root / "secret"
        self.secret.mkdir()
        self.generation = 0

    def leaf(
        self, *, client: bool = False, days: int = 30, now: datetime.datetime | None = None
    ) -> tuple[bytes, bytes, int]:
        cert, key = certs.issue_leaf(
            self.ca,
            ca_key=self.ca_key,
            dns_names=["localhost"],
            ips=LOCALHOST,
            client=client,
            days=days,
            now=now,
        )
        return certs.cert_pem(cert), certs.key_pem(key), cert.serial_number

    def publish(self, cert_pem: bytes, key_pem: bytes) -> None:
        """kubelet's atomic writer: a new timestamped dir, then one rename swaps the ``..data`` link."""
        self.generation += 1
        version = self.secret / f"..2026_01_01_00_00_{self.generation:02d}"
        version.mkdir()
        (version / "tls.crt").write_bytes(cert_pem)
        (version / "tls.key").write_bytes(key_pem)
        link = self.secret / "..data_tmp"
        link.symlink_to(version.name)
        os.replace(link, self.secret / "..data")
        for name in ("tls.crt", "tls.key"):
            if not (self.secret / name).is_symlink():
                (self.secret / name).symlink_to(f"..data/{name}")

    @property
    def cert(self) -> Path:
        return self.secret / "tls.crt"

    @property
    def key(self) -> Path:
        return self.secret / "tls.key"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def serve(context: ssl.SSLContext) -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def client_context(
    pki: Pki, *, cert: tuple[bytes, bytes, int] | None = None, tls12: bool = False
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        path = pki.root / "client.pem"
        path.write_bytes(cert[1] + cert[0])
        context.load_cert_chain(path)
    return context


async def fetch(port: int, context: ssl.SSLContext) -> tuple[str, int]:
    """One request on a new connection (a new handshake): the status line and the server's serial."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):
            await writer.wait_closed()
    return response.split(b"\r\n", 1)[0].decode(), x509.load_der_x509_certificate(der).serial_number


async def keep_alive_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    """One request on an existing HTTP/1.1 keep-alive connection; its status line."""
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    headers = dict(line.lower().split(": ", 1) for line in head.split("\r\n")[1:] if line)
    length = int(headers["content-length"])
    assert await reader.readexactly(length) == b"ok"
    return head.split("\r\n", 1)[0]


async def test_new_handshakes_get_the_swapped_certificate_and_no_request_fails(pki: Pki) -> None:
    first_cert, first_key, old_serial = pki.leaf()
    pki.publish(first_cert, first_key)
    context = tls.server_context(cert=pki.cert, key=pki.key)
    reloader = tls.CertReloader(context, cert=pki.cert, key=pki.key, interval=0.01)
    watcher = asyncio.create_task(reloader.run())
    client = client_context(pki)
    async for port in serve(context):
        # A keep-alive connection opened before the swap must survive it with its own certificate.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        live = x509.load_der_x509_certificate(
            writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        )
        assert await keep_alive_get(reader, writer) == "HTTP/1.1 200 OK"

        results: list[tuple[str, int]] = []
        new_cert, new_key, new_serial = pki.leaf()
        for _ in range(300):  # bounded: about a second of calls at most
            results.append(await fetch(port, client))
            if len(results) == 5:
                pki.publish(new_cert, new_key)
            if results[-1][1] == new_serial and len(results) > 10:
                break

        assert await keep_alive_get(reader, writer) == "HTTP/1.1 200 OK"
        assert live.serial_number == old_serial
        writer.close()
        await writer.wait_closed()
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)

    assert {status for status, _ in results} == {"HTTP/1.1 200 OK"}
    serials = [serial for _, serial in results]
    switch = serials.index(new_serial)
    assert set(serials[:switch]) == {old_serial} and set(serials[switch:]) == {new_serial}
    assert (reloader.reloads, reloader.failures, reloader.serial) == (1, 0, new_serial)


async def test_a_half_written_pair_is_never_served_and_the_old_certificate_stays(pki: Pki) -> None:
    # Plain files rewritten one after the other, as a careless writer would.
    old_cert, old_key, old_serial = pki.leaf()
    pki.cert.write_bytes(old_cert)
    pki.key.write_bytes(old_key)
    context = tls.server_context(cert=pki.cert, key=pki.key)
    reloader = tls.CertReloader(context, cert=pki.cert, key=pki.key)
    new_cert, new_key, new_serial = pki.leaf()
    client = client_context(pki)
    async for port in serve(context):
        pki.key.write_bytes(new_key)
        assert reloader.check_once() is False
        assert reloader.check_once() is False  # the same bad content is not reported twice
        assert reloader.failures == 1
        assert (
            reloader.last_error == f"{pki.cert}: does not match the private key in {pki.key}; "
            "write both from the same issuance"
        )
        assert await fetch(port, client) == ("HTTP/1.1 200 OK", old_serial)

        pki.cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage")
        assert reloader.check_once() is False
        assert reloader.last_error is not None
        assert reloader.last_error.startswith(f"{pki.cert}: not a PEM certificate")
        assert await fetch(port, client) == ("HTTP/1.1 200 OK", old_serial)

        pki.cert.write_bytes(new_cert)
        assert reloader.check_once() is True
        assert reloader.check_once() is False  # unchanged content: nothing to do
        assert await fetch(port, client) == ("HTTP/1.1 200 OK", new_serial)
    assert (reloader.reloads, reloader.failures, reloader.last_error) == (1, 2, None)


def test_a_vanished_file_is_reported_once_and_the_old_certificate_keeps_serving(pki: Pki) -> None:
    cert_pem, key_pem, serial = pki.leaf()
    pki.cert.write_bytes(cert_pem)
    pki.key.write_bytes(key_pem)
    reloader = tls.CertReloader(tls.server_context(cert=pki.cert, key=pki.key), cert=pki.cert, key=pki.key)
    pki.cert.unlink()
    assert (reloader.check_once(), reloader.check_once()) == (False, False)
    assert reloader.failures == 1
    assert reloader.last_error == f"{pki.cert}: cannot read certificate file: No such file or directory"
    pki.cert.write_bytes(cert_pem)
    assert reloader.check_once() is False
    assert (reloader.last_error, reloader.reloads, reloader.serial) == (None, 0, serial)


def test_seconds_until_expiry_and_expired_follow_the_served_certificate(pki: Pki) -> None:
    now = datetime.datetime.now(datetime.UTC)
    cert_pem, key_pem, _ = pki.leaf(days=2)
    pki.publish(cert_pem, key_pem)
    reloader = tls.CertReloader(tls.server_context(cert=pki.cert, key=pki.key), cert=pki.cert, key=pki.key)
    assert reloader.not_after == x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
    assert reloader.seconds_until_expiry(now=now) == pytest.approx(2 * 86400, abs=5)
    assert reloader.expired is False

    stale_cert, stale_key, _ = pki.leaf(days=1, now=now - datetime.timedelta(days=3))
    pki.publish(stale_cert, stale_key)
    assert reloader.check_once() is True
    assert reloader.seconds_until_expiry(now=now) == pytest.approx(-2 * 86400, abs=5)
    assert reloader.expired is True


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (("missing.crt", "tls.key"), "missing.crt: cannot read certificate file: No such file or directory"),
        (("tls.crt", "missing.key"), "missing.key: cannot read private key file: No such file or directory"),
        (("tls.crt", "other.key"), "tls.crt: does not match the private key in"),
        (("tls.key", "tls.key"), "tls.key: not a PEM certificate"),
        (("tls.crt", "tls.crt"), "tls.crt: not an unencrypted PEM private key"),
    ],
)
def test_server_context_names_the_file_that_is_wrong(pki: Pki, files: tuple[str, str], message: str) -> None:
    cert_pem, key_pem, _ = pki.leaf()
    pki.publish(cert_pem, key_pem)
    (pki.secret / "other.key").write_bytes(pki.leaf()[1])
    with pytest.raises(errors.CertificateError, match=message):
        tls.server_context(cert=pki.secret / files[0], key=pki.secret / files[1])


def test_the_context_refuses_old_protocols_and_non_forward_secret_ciphers(pki: Pki) -> None:
    cert_pem, key_pem, _ = pki.leaf()
    pki.publish(cert_pem, key_pem)
    context = tls.server_context(cert=pki.cert, key=pki.key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["kea"] == "kx-ecdhe" and c["aead"] for c in tls12)


async def test_with_a_client_ca_only_certificates_from_that_ca_pass_the_handshake(pki: Pki) -> None:
    cert_pem, key_pem, serial = pki.leaf()
    pki.publish(cert_pem, key_pem)
    context = tls.server_context(cert=pki.cert, key=pki.key, client_ca=pki.ca_file)
    # Optional at the TLS layer so probes without a certificate can connect; admission paths are
    # refused without one by the server (tests/test_mtls_server.py).
    assert context.verify_mode == ssl.CERT_OPTIONAL
    async for port in serve(context):
        # A certificate from another CA is refused by the handshake.
        stranger = Pki(pki.root / "stranger")
        try:
            status, _ = await fetch(port, client_context(pki, cert=stranger.leaf(client=True)))
        except (ssl.SSLError, ConnectionResetError):
            status = "handshake refused"
        assert status in ("", "handshake refused")
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await fetch(port, client_context(pki, cert=stranger.leaf(client=True), tls12=True))
        # The right client certificate gets through, and so does a client with none.
        assert await fetch(port, client_context(pki, cert=pki.leaf(client=True))) == ("HTTP/1.1 200 OK", serial)
        assert await fetch(port, client_context(pki)) == ("HTTP/1.1 200 OK", serial)


async def test_without_a_client_ca_no_client_certificate_is_needed(pki: Pki) -> None:
    cert_pem, key_pem, serial = pki.leaf()
    pki.publish(cert_pem, key_pem)
    async for port in serve(tls.server_context(cert=pki.cert, key=pki.key)):
        assert await fetch(port, client_context(pki)) == ("HTTP/1.1 200 OK", serial)
        assert await fetch(port, client_context(pki, tls12=True)) == ("HTTP/1.1 200 OK", serial)
