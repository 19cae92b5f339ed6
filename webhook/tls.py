"""The server's TLS: building the ``SSLContext`` and reloading its certificate without a restart.

The API server only speaks HTTPS to webhooks and verifies the serving certificate against the
``caBundle`` of the webhook configuration. Certificates are rotated by rewriting files: a mounted
Secret is updated by kubelet's atomic writer, which swaps a ``..data`` symlink, so file events on
``tls.crt`` are unreliable (inotify watches the old inode). :class:`CertReloader` therefore polls a
hash of the files' *content*, as controller-runtime's certwatcher falls back to doing.

Reloading calls ``load_cert_chain`` on the *live* context: OpenSSL copies the certificate into
each connection when it is created, so new handshakes get the new pair while connections already
open keep the one they started with.

A serving process never imports ``cryptography`` (8 MB a worker) while its files are sound: OpenSSL
itself checks that the pair parses and matches (loaded into a throwaway context), and the three
facts the reloader needs of the leaf (serial number, notBefore, notAfter) are read from its DER by
:func:`leaf_facts`. Only a pair OpenSSL refuses goes to ``cryptography`` (:mod:`webhook.certs`),
which says precisely what is wrong with which file.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from webhook import errors, logs

log = logs.get("webhook.tls")

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""Forward-secret AEAD suites only (what Go's crypto/tls, the API server's client, prefers).
TLS 1.3 suites are configured separately by OpenSSL and are all AEAD."""

DEFAULT_RELOAD_INTERVAL = 10.0
"""Seconds between polls. kubelet refreshes mounted Secrets about once a minute, so this is ample."""

MIN_REMAINING_VALIDITY = datetime.timedelta(seconds=60)
"""A reloaded certificate must stay valid longer than this. Swapping in one that is about to expire
would turn every replica's /readyz to 503 within the minute (they all poll the same Secret) instead
of leaving the current certificate serving while the alert on its expiry fires."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Leaf(NamedTuple):
    """What the reloader needs of the serving certificate."""

    serial: int
    not_before: datetime.datetime
    not_after: datetime.datetime


def _der_items(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """The DER elements between ``start`` and ``end``: (tag, value start, value end)."""
    at = start
    while at < end:
        tag, length = data[at], data[at + 1]
        at += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[at : at + count], "big")
            at += count
        if at + length > end:
            raise ValueError("DER element runs past its container")
        yield tag, at, at + length
        at += length


def _der_time(tag: int, text: bytes) -> datetime.datetime:
    """RFC 5280 4.1.2.5: UTCTime ``YYMMDDHHMMSSZ`` (years 1950-2049) or GeneralizedTime
    ``YYYYMMDDHHMMSSZ``, both in UTC without fractions."""
    value = text.decode("ascii")
    if tag == 0x17:
        year = int(value[:2])
        value = f"{1900 + year if year >= 50 else 2000 + year}{value[2:]}"
    elif tag != 0x18:
        raise ValueError(f"not a time: tag {tag:#x}")
    return datetime.datetime.strptime(value, "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.UTC)


def leaf_facts(cert_pem: bytes) -> Leaf:
    """Serial number and validity of the first certificate of ``cert_pem``, read from its DER
    (``Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version, serialNumber, signature,
    issuer, validity SEQUENCE { notBefore, notAfter }, ...`` ). Raises ``ValueError``."""
    text = cert_pem.decode("ascii", errors="replace")
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", begin)
    if begin < 0 or end < 0:
        raise ValueError("no PEM certificate")
    der = ssl.PEM_cert_to_DER_cert(text[begin : end + len("-----END CERTIFICATE-----")])
    _, cert_start, cert_end = next(_der_items(der, 0, len(der)))
    _, tbs_start, tbs_end = next(_der_items(der, cert_start, cert_end))
    fields = [item for item in _der_items(der, tbs_start, tbs_end)]
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    (serial_tag, serial_start, serial_end), _, _, (validity_tag, validity_start, validity_end) = fields[:4]
    if serial_tag != 0x02 or validity_tag != 0x30:
        raise ValueError("unexpected certificate structure")
    times = [_der_time(tag, der[a:b]) for tag, a, b in _der_items(der, validity_start, validity_end)]
    if len(times) != 2:
        raise ValueError("unexpected validity")
    return Leaf(int.from_bytes(der[serial_start:serial_end], "big", signed=True), times[0], times[1])


def _read_pair(*, cert: Path, key: Path) -> tuple[bytes, bytes, Leaf]:
    """Both files' bytes and the leaf's facts, checked so every problem names its file.

    Each file is read once: the bytes checked are exactly the bytes loaded afterwards.
    """
    cert_pem, key_pem = _read(cert, what="certificate"), _read(key, what="private key")
    return cert_pem, key_pem, _check_pair(cert_pem, key_pem, cert=cert, key=key)


def _check_pair(cert_pem: bytes, key_pem: bytes, *, cert: Path, key: Path) -> Leaf:
    """The leaf's facts once OpenSSL loads the pair (so it parses and matches). A pair it refuses
    is examined by ``cryptography``, which names the file and the problem."""
    try:
        _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert_pem=cert_pem, key_pem=key_pem, cert=cert)
        return leaf_facts(cert_pem)
    except (errors.CertificateError, ValueError):
        pass
    from webhook import certs  # cryptography: only for a pair that is wrong

    chain = certs.parse_certs(cert_pem, source=cert)
    if not chain:
        raise errors.CertificateError(f"{cert}: holds no PEM certificate")
    private = certs.parse_key(key_pem, source=key)
    if not certs.same_public_key(chain[0], private):
        raise errors.CertificateError(
            f"{cert}: does not match the private key in {key}; write both from the same issuance"
        )
    leaf = chain[0]
    _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert_pem=cert_pem, key_pem=key_pem, cert=cert)  # says why not
    return Leaf(leaf.serial_number, leaf.not_valid_before_utc, leaf.not_valid_after_utc)


def _check_validity(leaf: Leaf, *, cert: Path, now: datetime.datetime, serving_serial: int) -> None:
    """Refuse a new leaf the API server would reject now or within :data:`MIN_REMAINING_VALIDITY`.

    Only for reloads: the certificate loaded at start is served whatever its dates, so an expired
    one shows as a failing /readyz and a negative expiry gauge rather than as a crash loop.
    Raises :class:`~webhook.errors.CertificateError` naming the reason and what to do.
    """
    keeping = f"keeping the current certificate (serial {serving_serial:x})"
    not_before, not_after = leaf.not_before, leaf.not_after
    if not_before > now:
        # Go's crypto/tls (the API server) rejects a certificate before its notBefore, so serving
        # it would fail every admission call while /readyz, which only looks at expiry, says ready.
        raise errors.CertificateError(
            f"{cert}: certificate not valid before {not_before.isoformat()} (the clock here reads "
            f"{now.isoformat()}); {keeping}; it is loaded once that time has passed; if it should "
            "already be valid, check the clock of the host that issued it"
        )
    if not_after <= now:
        raise errors.CertificateError(
            f"{cert}: certificate expired at {not_after.isoformat()}; {keeping}; write a renewed "
            "certificate and key (`python -m webhook certs`, or let cert-manager renew the Secret)"
        )
    if not_after <= now + MIN_REMAINING_VALIDITY:
        raise errors.CertificateError(
            f"{cert}: certificate expires at {not_after.isoformat()}, within "
            f"{MIN_REMAINING_VALIDITY.total_seconds():.0f} s; {keeping}; issue it with a longer lifetime"
        )


def _read(path: Path, *, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise errors.CertificateError(f"{path}: cannot read {what} file: {exc.strerror}") from exc


@contextlib.contextmanager
def _in_memory_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that nobody else can change between our check and OpenSSL's read.

    ``ssl`` only loads certificates from paths. Loading the checked bytes (not the original path
    again) closes the window in which kubelet could swap the files. On Linux an anonymous
    ``memfd`` keeps the key off any disk (and works on a read-only root filesystem); elsewhere a
    0600 temporary file is used and removed at once.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("webhook-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
    else:  # pragma: no cover - macOS development machines
        handle, path = tempfile.mkstemp(prefix="webhook-tls-")
        try:
            os.write(handle, data)
            os.close(handle)
            yield path
        finally:
            Path(path).unlink(missing_ok=True)


def _load(context: ssl.SSLContext, *, cert_pem: bytes, key_pem: bytes, cert: Path) -> None:
    # Key and chain in one file: ``load_cert_chain(certfile)`` takes the key from it too.
    with _in_memory_file(key_pem + b"\n" + cert_pem) as path:
        try:
            context.load_cert_chain(path)
        except ssl.SSLError as exc:
            raise errors.CertificateError(f"{cert}: OpenSSL refused the certificate/key pair: {exc}") from exc


def server_context(*, cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server context with TLS >= 1.2 and, when ``client_ca`` is given, mutual TLS.

    With ``client_ca``, a certificate a client presents must be signed by that CA or the handshake
    fails; presenting none is allowed at the TLS layer (``CERT_OPTIONAL``) because the kubelet's
    HTTPS probes of /healthz and /readyz carry no client certificate. The server then refuses
    admission paths without a verified certificate (:func:`webhook.server.require_client_certificate`).
    The API server presents one when its AdmissionConfiguration names a kubeconfig with client
    credentials for this webhook.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    cert_pem, key_pem, _ = _read_pair(cert=cert, key=key)
    _load(context, cert_pem=cert_pem, key_pem=key_pem, cert=cert)
    if client_ca is not None:
        # Parse first so a bad file is reported by name, not as an OpenSSL error code.
        from webhook import certs  # cryptography, with mutual TLS only

        if not certs.load_certs(client_ca):
            raise errors.CertificateError(f"{client_ca}: holds no PEM certificate")
        context.verify_mode = ssl.CERT_OPTIONAL
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except ssl.SSLError as exc:
            raise errors.CertificateError(f"{client_ca}: cannot load client CA: {exc}") from exc
    return context


class CertReloader:
    """Polls ``cert``/``key`` and reloads ``context`` in place when their content changes.

    A change is applied only when the new pair parses, matches, is already valid and stays valid
    for more than :data:`MIN_REMAINING_VALIDITY`; otherwise the old certificate keeps serving, the
    reason is logged, counted and kept in :attr:`last_error`, and the next poll tries again (a
    writer that replaces key and certificate one after the other is caught in between at most once).

    ``now`` is the clock the validity checks and :meth:`seconds_until_expiry` read (tests pass a
    fake one instead of sleeping).
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        cert: Path,
        key: Path,
        interval: float = DEFAULT_RELOAD_INTERVAL,
        now: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.context = context
        self.cert = cert
        self.key = key
        self.interval = interval
        self.reloads = 0
        """Successful reloads since start (the initial load does not count)."""
        self.failures = 0
        """Changed file contents that could not be loaded (each distinct bad version counts once)."""
        self.last_error: str | None = None
        """Why the files on disk are not being served; ``None`` once they hold what is served."""
        self._now = now
        cert_pem, key_pem, leaf = _read_pair(cert=cert, key=key)
        # Load once more so the context certainly holds what the hash describes.
        _load(context, cert_pem=cert_pem, key_pem=key_pem, cert=cert)
        self._digest = self._hash(cert_pem, key_pem)
        self._rejected: bytes | None = None
        self._rejected_until: datetime.datetime | None = None
        """When the rejected content was refused only as not yet valid: the time it becomes valid."""
        self.serial: int = leaf.serial
        self.not_after: datetime.datetime = leaf.not_after

    @staticmethod
    def _hash(cert_pem: bytes, key_pem: bytes) -> bytes:
        return hashlib.sha256(cert_pem + b"\0" + key_pem).digest()

    def check_once(self) -> bool:
        """Reload if the files changed; True when a new certificate is now being served."""
        try:
            cert_pem, key_pem = _read(self.cert, what="certificate"), _read(self.key, what="private key")
        except errors.CertificateError as exc:
            # A Secret volume being swapped can make a path vanish for an instant; a path that
            # stays missing is reported once, not on every poll.
            if str(exc) != self.last_error:
                self._fail(str(exc))
            return False
        current = self._hash(cert_pem, key_pem)
        if current == self._digest:
            self.last_error = None  # back to (or still) what is being served
            return False
        now = self._now()
        if current == self._rejected and (self._rejected_until is None or now < self._rejected_until):
            return False  # the same broken content was already reported: one warning per bad version
        leaf: Leaf | None = None
        try:
            # The pair is loaded into a probe context first (in _check_pair): load_cert_chain
            # failing half-way could leave the live context with the new certificate but no key.
            leaf = _check_pair(cert_pem, key_pem, cert=self.cert, key=self.key)
            _check_validity(leaf, cert=self.cert, now=now, serving_serial=self.serial)
            _load(self.context, cert_pem=cert_pem, key_pem=key_pem, cert=self.cert)
        except errors.CertificateError as exc:
            self._rejected = current
            # Expired content stays expired, but a pair issued a little ahead of this clock (skew
            # on the issuing host) becomes loadable by itself: look at it again once it is valid.
            if leaf is not None and leaf.not_before > now:
                self._rejected_until = leaf.not_before
            else:
                self._rejected_until = None
            self._fail(str(exc))
            return False
        self._digest = current
        self.reloads += 1
        self.last_error = None
        old_serial, self.serial, self.not_after = self.serial, leaf.serial, leaf.not_after
        log.info(
            "certificate_reloaded",
            cert=str(self.cert),
            old_serial=f"{old_serial:x}",
            serial=f"{self.serial:x}",
            not_after=self.not_after.isoformat(),
        )
        return True

    def _fail(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        log.warning("certificate_reload_failed", error=message, serving_serial=f"{self.serial:x}")

    def seconds_until_expiry(self, *, now: datetime.datetime | None = None) -> float:
        """Negative once expired; exported as a gauge so alerts fire before the API server's calls fail."""
        now = now or self._now()
        return (self.not_after - now).total_seconds()

    @property
    def expired(self) -> bool:
        return self.seconds_until_expiry() <= 0

    async def run(self) -> None:
        """Poll forever; cancel the task to stop. Meant for an aiohttp ``cleanup_ctx``."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check_once()
            except Exception:  # never let the watcher die silently and leave a stale certificate
                log.exception("certificate_check_crashed")
