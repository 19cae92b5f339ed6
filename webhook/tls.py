"""The server's TLS: building the ``SSLContext`` and reloading its certificate without a restart.

The API server only speaks HTTPS to webhooks and verifies the serving certificate against the
``caBundle`` of the webhook configuration. Certificates are rotated by rewriting files: a mounted
Secret is updated by kubelet's atomic writer, which swaps a ``..data`` symlink, so file events on
``tls.crt`` are unreliable (inotify watches the old inode). :class:`CertReloader` therefore polls a
hash of the files' *content*, as controller-runtime's certwatcher falls back to doing.

Reloading calls ``load_cert_chain`` on the *live* context: OpenSSL copies the certificate into
each connection when it is created, so new handshakes get the new pair while connections already
open keep the one they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from webhook import certs, errors, logs

log = logs.get("webhook.tls")

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""Forward-secret AEAD suites only (what Go's crypto/tls, the API server's client, prefers).
TLS 1.3 suites are configured separately by OpenSSL and are all AEAD."""

DEFAULT_RELOAD_INTERVAL = 10.0
"""Seconds between polls. kubelet refreshes mounted Secrets about once a minute, so this is ample."""


def _read_pair(*, cert: Path, key: Path) -> tuple[bytes, bytes, x509.Certificate]:
    """Both files' bytes and the leaf, checked so every problem names its file.

    Each file is read once: the bytes checked are exactly the bytes loaded afterwards.
    """
    cert_pem, key_pem = _read(cert, what="certificate"), _read(key, what="private key")
    return cert_pem, key_pem, _check_pair(cert_pem, key_pem, cert=cert, key=key)


def _check_pair(cert_pem: bytes, key_pem: bytes, *, cert: Path, key: Path) -> x509.Certificate:
    """The leaf of ``cert_pem`` once ``cryptography`` agrees it parses and matches ``key_pem``."""
    chain = certs.parse_certs(cert_pem, source=cert)
    if not chain:
        raise errors.CertificateError(f"{cert}: holds no PEM certificate")
    private = certs.parse_key(key_pem, source=key)
    if not certs.same_public_key(chain[0], private):
        raise errors.CertificateError(
            f"{cert}: does not match the private key in {key}; write both from the same issuance"
        )
    return chain[0]


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

    A change is applied only when the new pair parses and matches; otherwise the old certificate
    keeps serving, the failure is logged and counted, and the next poll tries again (a writer that
    replaces key and certificate one after the other is caught in between at most once).
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        cert: Path,
        key: Path,
        interval: float = DEFAULT_RELOAD_INTERVAL,
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
        cert_pem, key_pem, leaf = _read_pair(cert=cert, key=key)
        # Load once more so the context certainly holds what the hash describes.
        _load(context, cert_pem=cert_pem, key_pem=key_pem, cert=cert)
        self._digest = self._hash(cert_pem, key_pem)
        self._rejected: bytes | None = None
        self.serial: int = leaf.serial_number
        self.not_after: datetime.datetime = leaf.not_valid_after_utc

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
        if current == self._rejected:
            return False  # the same broken content was already reported: one warning per bad version
        try:
            leaf = _check_pair(cert_pem, key_pem, cert=self.cert, key=self.key)
            # A probe context first: load_cert_chain failing half-way could leave the live
            # context with the new certificate but no usable key.
            _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert_pem=cert_pem, key_pem=key_pem, cert=self.cert)
            _load(self.context, cert_pem=cert_pem, key_pem=key_pem, cert=self.cert)
        except errors.CertificateError as exc:
            self._rejected = current
            self._fail(str(exc))
            return False
        self._digest = current
        self.reloads += 1
        self.last_error = None
        old_serial, self.serial, self.not_after = self.serial, leaf.serial_number, leaf.not_valid_after_utc
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
        now = now or datetime.datetime.now(datetime.UTC)
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
