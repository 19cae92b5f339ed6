"""``webhook.tls`` against a real aiohttp HTTPS server on 127.0.0.1: reload without downtime, mTLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from cryptography import x509

from tests import conftest
from webhook import certs, config, engine, errors, server, tls
from webhook.policy import files

LOCALHOST = [certs.ipaddress.ip_address("127.0.0.1")]
DAY = datetime.timedelta(days=1)
SECONDS = datetime.timedelta(seconds=1)


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


class Clock:
    """The reloader's ``now``: stands still until a test moves it, so validity is tested without sleeping."""

    def __init__(self) -> None:
        # Whole seconds, as certificates store them, so expected messages are exact.
        self.at = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

    def __call__(self) -> datetime.datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock()


def serving(pki: Pki, clock: Clock) -> tuple[tls.CertReloader, int]:
    """A reloader on the clock, serving a fresh 30-day pair; and that pair's serial."""
    cert_pem, key_pem, serial = pki.leaf(now=clock.at)
    pki.publish(cert_pem, key_pem)
    context = tls.server_context(cert=pki.cert, key=pki.key)
    return tls.CertReloader(context, cert=pki.cert, key=pki.key, now=clock), serial


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


def test_seconds_until_expiry_and_expired_follow_the_served_certificate_on_the_reloaders_clock(
    pki: Pki, clock: Clock
) -> None:
    # At start the pair is served whatever its dates (an expired one fails /readyz, not the process).
    stale_cert, stale_key, stale_serial = pki.leaf(days=1, now=clock.at - 3 * DAY)
    pki.publish(stale_cert, stale_key)
    context = tls.server_context(cert=pki.cert, key=pki.key)
    reloader = tls.CertReloader(context, cert=pki.cert, key=pki.key, now=clock)
    assert (reloader.serial, reloader.not_after) == (stale_serial, clock.at - 2 * DAY)
    assert reloader.seconds_until_expiry() == -2 * 86400
    assert reloader.expired is True
    assert (reloader.failures, reloader.last_error) == (0, None)

    fresh_cert, fresh_key, fresh_serial = pki.leaf(days=2, now=clock.at)
    pki.publish(fresh_cert, fresh_key)
    assert reloader.check_once() is True
    assert (reloader.serial, reloader.seconds_until_expiry()) == (fresh_serial, 2 * 86400)
    assert reloader.expired is False
    assert reloader.seconds_until_expiry(now=clock.at + 3 * DAY) == -86400
    clock.at += 2 * DAY
    assert (reloader.seconds_until_expiry(), reloader.expired) == (0, True)


KEEPING = "keeping the current certificate (serial {serial})"
RENEW = "write a renewed certificate and key (`python -m webhook certs`, or let cert-manager renew the Secret)"


@pytest.mark.parametrize(
    ("issued", "days", "time", "reason"),
    [
        # When the new pair was issued (from the clock), its lifetime in days, the time its message
        # names (from the clock), and the message after "<cert path>: ".
        (-3 * DAY, 1, -2 * DAY, f"certificate expired at {{time}}; {KEEPING}; {RENEW}"),
        (-DAY, 1, 0 * DAY, f"certificate expired at {{time}}; {KEEPING}; {RENEW}"),
        (-DAY + 30 * SECONDS, 1, 30 * SECONDS,
         f"certificate expires at {{time}}, within 60 s; {KEEPING}; issue it with a longer lifetime"),
        (-DAY + 60 * SECONDS, 1, 60 * SECONDS,
         f"certificate expires at {{time}}, within 60 s; {KEEPING}; issue it with a longer lifetime"),
        (DAY, 30, DAY - certs.BACKDATE,
         f"certificate not valid before {{time}} (the clock here reads {{now}}); {KEEPING}; it is loaded "
         "once that time has passed; if it should already be valid, check the clock of the host that issued it"),
    ],
    ids=["expired", "expiring-now", "expiring-within-a-minute", "expiring-in-exactly-60s", "not-yet-valid"],
)
async def test_a_new_pair_that_is_not_valid_for_another_minute_is_refused_and_the_old_one_keeps_serving(
    pki: Pki, clock: Clock, issued: datetime.timedelta, days: int, time: datetime.timedelta, reason: str
) -> None:
    reloader, old_serial = serving(pki, clock)
    new_cert, new_key, _ = pki.leaf(days=days, now=clock.at + issued)
    expected = f"{pki.cert}: " + reason.format(
        time=(clock.at + time).isoformat(), now=clock.at.isoformat(), serial=f"{old_serial:x}"
    )
    async for port in serve(reloader.context):
        pki.publish(new_cert, new_key)
        with structlog.testing.capture_logs() as logged:
            assert (reloader.check_once(), reloader.check_once()) == (False, False)
        assert await fetch(port, client_context(pki)) == ("HTTP/1.1 200 OK", old_serial)
    assert (reloader.serial, reloader.reloads, reloader.failures, reloader.last_error) == (old_serial, 0, 1, expected)
    # One warning for the bad version, never a certificate_reloaded line.
    assert logged == [
        {
            "event": "certificate_reload_failed",
            "log_level": "warning",
            "error": expected,
            "serving_serial": f"{old_serial:x}",
        }
    ]


def test_a_pair_valid_for_just_over_a_minute_is_loaded(pki: Pki, clock: Clock) -> None:
    reloader, _ = serving(pki, clock)
    cert_pem, key_pem, serial = pki.leaf(days=1, now=clock.at - DAY + 61 * SECONDS)
    pki.publish(cert_pem, key_pem)
    with structlog.testing.capture_logs() as logged:
        assert reloader.check_once() is True
    assert (reloader.serial, reloader.reloads, reloader.failures, reloader.last_error) == (serial, 1, 0, None)
    assert [event["event"] for event in logged] == ["certificate_reloaded"]


def test_a_valid_pair_after_a_refused_one_is_loaded_and_clears_the_error(pki: Pki, clock: Clock) -> None:
    reloader, _ = serving(pki, clock)
    pki.publish(*pki.leaf(days=1, now=clock.at - 3 * DAY)[:2])
    assert reloader.check_once() is False
    assert "certificate expired at" in (reloader.last_error or "")

    cert_pem, key_pem, serial = pki.leaf(now=clock.at)
    pki.publish(cert_pem, key_pem)
    assert reloader.check_once() is True
    assert (reloader.serial, reloader.reloads, reloader.failures, reloader.last_error) == (serial, 1, 1, None)


def test_putting_the_served_pair_back_clears_the_error_without_a_reload(pki: Pki, clock: Clock) -> None:
    reloader, serial = serving(pki, clock)
    served = (pki.cert.read_bytes(), pki.key.read_bytes())
    pki.publish(*pki.leaf(days=1, now=clock.at - 3 * DAY)[:2])
    assert reloader.check_once() is False
    pki.publish(*served)
    assert reloader.check_once() is False
    assert (reloader.serial, reloader.reloads, reloader.failures, reloader.last_error) == (serial, 0, 1, None)


def test_a_pair_refused_as_not_yet_valid_is_loaded_once_its_time_comes(pki: Pki, clock: Clock) -> None:
    # An issuer whose clock runs ahead: the pair needs no rewrite, only time.
    reloader, old_serial = serving(pki, clock)
    cert_pem, key_pem, new_serial = pki.leaf(now=clock.at + certs.BACKDATE + 10 * SECONDS)
    pki.publish(cert_pem, key_pem)
    assert reloader.check_once() is False
    clock.at += 9 * SECONDS
    assert reloader.check_once() is False  # still early: not reported again
    assert (reloader.serial, reloader.failures) == (old_serial, 1)
    clock.at += SECONDS  # exactly notBefore: valid
    assert reloader.check_once() is True
    assert (reloader.serial, reloader.reloads, reloader.failures, reloader.last_error) == (new_serial, 1, 1, None)


def test_an_expired_pair_is_not_looked_at_again_however_long_it_stays(pki: Pki, clock: Clock) -> None:
    reloader, old_serial = serving(pki, clock)
    pki.publish(*pki.leaf(days=1, now=clock.at - 3 * DAY)[:2])
    assert reloader.check_once() is False
    clock.at += 10 * DAY
    assert reloader.check_once() is False
    assert (reloader.serial, reloader.failures) == (old_serial, 1)


def demo_policy_set(tmp_path: Path) -> engine.PolicySet:
    (tmp_path / "p.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\ndemoPods: {}\n")
    catalog = conftest.make_catalog()
    return engine.PolicySet(files.load([tmp_path], catalog=catalog), catalog=catalog)


async def until(condition: Any) -> None:
    """Wait for the app's background poll (bounded: a second at most)."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the certificate poll did not run")


async def test_through_the_app_a_refused_pair_is_reported_by_readyz_and_metrics_without_failing_readiness(
    aiohttp_client: Any, pki: Pki, tmp_path: Path
) -> None:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert_pem, key_pem, old_serial = pki.leaf(now=now)
    pki.publish(cert_pem, key_pem)
    reloader = tls.CertReloader(tls.server_context(cert=pki.cert, key=pki.key), cert=pki.cert, key=pki.key)
    policies = tmp_path / "policies"
    policies.mkdir()
    settings = config.ServeSettings(policies=(policies,), reload_interval=0.01)
    client = await aiohttp_client(server.build_app(settings, policy_set=demo_policy_set(policies),
                                                   certificates=reloader))

    pki.publish(*pki.leaf(days=1, now=now - 3 * DAY)[:2])
    await until(lambda: reloader.failures == 1)
    expected = (
        f"{pki.cert}: certificate expired at {(now - 2 * DAY).isoformat()}; "
        + KEEPING.format(serial=f"{old_serial:x}") + f"; {RENEW}"
    )
    ready = await client.get("/readyz")
    body = await ready.json()
    assert (ready.status, body["status"], body["problems"]) == (200, "ready", [])
    assert body["certificate"] == {"reloadError": expected}
    text = await (await client.get("/metrics")).text()
    assert "admission_certificate_reload_errors_total 1.0" in text.splitlines()
    assert 'admission_certificate_reloads_total{result="error"} 1.0' in text.splitlines()
    assert 'admission_certificate_reloads_total{result="success"}' not in text
    expiry = next(line for line in text.splitlines() if line.startswith("admission_certificate_expiry_seconds "))
    assert float(expiry.split()[1]) > 29 * 86400  # the served 30-day certificate, not the expired one

    new_cert, new_key, new_serial = pki.leaf(now=now)
    pki.publish(new_cert, new_key)
    await until(lambda: reloader.serial == new_serial)
    ready = await client.get("/readyz")
    assert (ready.status, (await ready.json())["certificate"]) == (200, {"reloadError": None})
    text = await (await client.get("/metrics")).text()
    assert 'admission_certificate_reloads_total{result="success"} 1.0' in text.splitlines()
    assert "admission_certificate_reload_errors_total 1.0" in text.splitlines()


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


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (datetime.datetime(2026, 12, 1, 13, 45, 17, tzinfo=datetime.UTC), 90),  # UTCTime both
        (datetime.datetime(2049, 12, 1, tzinfo=datetime.UTC), 60),  # notAfter in 2050: GeneralizedTime
        (datetime.datetime(1999, 6, 30, 23, 59, 59, tzinfo=datetime.UTC), 1),  # a 19xx UTCTime
    ],
)
def test_leaf_facts_read_from_der_agree_with_cryptography(now: datetime.datetime, days: int) -> None:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "facts CA")])
    ca, ca_key = certs.issue_ca(name=name, days=days + 10, now=now)
    for _ in range(20):  # random serials: some with the high bit set (a leading zero byte in DER)
        leaf, _ = certs.issue_leaf(ca, ca_key=ca_key, dns_names=["webhook.example"], ips=[], days=days, now=now)
        facts = tls.leaf_facts(certs.cert_pem(leaf, ca))
        assert facts == (leaf.serial_number, leaf.not_valid_before_utc, leaf.not_valid_after_utc)


def test_a_sound_pair_is_served_without_importing_cryptography(tmp_path: Path) -> None:
    import subprocess
    import sys

    certs.ensure(tmp_path, service="webhook", namespace="ns", hosts=["localhost"], ips=["127.0.0.1"])
    script = (
        "import sys; from pathlib import Path; from webhook import tls; "
        f"context = tls.server_context(cert=Path({str(tmp_path / 'tls.crt')!r}), key=Path({str(tmp_path / 'tls.key')!r})); "
        f"tls.CertReloader(context, cert=Path({str(tmp_path / 'tls.crt')!r}), key=Path({str(tmp_path / 'tls.key')!r})); "
        "print('cryptography' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
