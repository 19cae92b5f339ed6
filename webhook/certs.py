"""Certificates for the webhook: a private CA and the serving certificate it signs, kept on disk.

Pure ``cryptography`` work plus atomic file writes; no server, no cluster. The output files use
the names a Kubernetes TLS Secret and cert-manager use (``tls.crt``, ``tls.key``, ``ca.crt``) so a
directory made here can become the ``admission-webhook-tls`` Secret as it is.

:func:`ensure` is idempotent: it keeps what is still good and rewrites only what must change, so
running it twice changes nothing (no file is even rewritten). The serving (leaf) certificate is
renewed when a third of its lifetime remains (cert-manager's default ``renewBefore``), when its
names differ from the requested ones, or when it was not signed by the current CA.

CA rotation follows Kubewarden's order, because the API server checks the webhook's certificate
against the ``caBundle`` registered in the webhook configuration and that bundle and the Secret
are updated by separate writes that can land in either order:

1. ``--rotate-ca`` makes a new CA; ``ca.crt`` becomes *new + old* CA, the leaf stays signed by the
   old CA. Deploy: the cluster's caBundle now trusts both.
2. The next plain run re-issues the leaf with the new CA (trusted by the bundle already deployed).
3. ``--finish-ca-rotation`` drops the old CA from ``ca.crt`` (refused while the leaf on disk is
   still signed by an old CA); an old CA is also dropped by any run once it has expired.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from webhook import errors

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"

DEFAULT_DAYS = 365
DEFAULT_CA_DAYS = 3650
RENEW_FRACTION = 1 / 3
"""Renew when this fraction of the lifetime remains (cert-manager renews at 2/3 of the duration)."""
BACKDATE = datetime.timedelta(minutes=5)
"""notBefore is set a little in the past so a node whose clock lags does not reject a fresh cert."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def service_dns_names(service: str, *, namespace: str) -> list[str]:
    """The names the API server may use for a Service: it dials ``<service>.<namespace>.svc`` and
    checks that name against the certificate; the shorter and longer forms serve in-cluster clients."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def split_hosts(hosts: Sequence[str], *, ips: Sequence[str] = ()) -> tuple[list[str], list[IPAddress]]:
    """DNS names and IP addresses, de-duplicated in order; a ``--host`` that parses as an IP counts as one
    (a DNS SAN holding an IP literal is not matched by clients that connect to that IP)."""
    names: list[str] = []
    addresses: list[IPAddress] = []
    for value in [*hosts, *ips]:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            if value in ips:
                raise errors.CertificateError(f"--ip {value!r} is not an IP address") from None
            if value and value not in names:
                names.append(value)
        else:
            if address not in addresses:
                addresses.append(address)
    return names, addresses


def new_key() -> ec.EllipticCurvePrivateKey:
    """ECDSA P-256: accepted by every supported API server (Go's crypto/tls) and cheap to handshake."""
    return ec.generate_private_key(ec.SECP256R1())


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def issue_ca(
    *, name: x509.Name, days: int = DEFAULT_CA_DAYS, now: datetime.datetime | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA that may sign leaves only (pathLength 0)."""
    now = now or _utcnow()
    key = new_key()
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue_leaf(
    ca_cert: x509.Certificate,
    *,
    ca_key: PrivateKey,
    dns_names: Sequence[str],
    ips: Sequence[IPAddress] = (),
    days: int = DEFAULT_DAYS,
    client: bool = False,
    now: datetime.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A serving certificate (``serverAuth``) or, with ``client``, a client one (``clientAuth``, for mTLS).

    Names go in subjectAltName only matters: Go has ignored the CN for host names since 1.15. The
    lifetime is capped at the CA's so the leaf never outlives what trusts it.
    """
    if not dns_names and not ips:
        raise errors.CertificateError("a certificate needs at least one DNS name or IP address")
    now = now or _utcnow()
    key = new_key()
    public = key.public_key()
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    common_name = dns_names[0] if dns_names else str(ips[0])
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ip) for ip in ips]
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # ECDSA keys sign the handshake; keyEncipherment is only meaningful for RSA key transport.
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_certs(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file; :class:`~webhook.errors.CertificateError` naming it otherwise."""
    return parse_certs(_read(path, what="certificate"), source=path)


def load_key(path: Path) -> PrivateKey:
    return parse_key(_read(path, what="private key"), source=path)


def _read(path: Path, *, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise errors.CertificateError(f"{path}: cannot read {what} file: {exc.strerror}") from exc


def parse_certs(data: bytes, *, source: Path) -> list[x509.Certificate]:
    """The certificates in PEM ``data`` read from ``source`` (named in errors)."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise errors.CertificateError(f"{source}: not a PEM certificate ({exc})") from exc


def parse_key(data: bytes, *, source: Path) -> PrivateKey:
    """An unencrypted PEM private key (ECDSA or RSA) read from ``source`` (named in errors)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise errors.CertificateError(
            f"{source}: not an unencrypted PEM private key; write it without a passphrase"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise errors.CertificateError(
            f"{source}: unsupported key type {type(key).__name__}; use ECDSA or RSA"
        )
    return key


def same_public_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def issued_by(leaf: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def alt_names(cert: x509.Certificate) -> tuple[set[str], set[IPAddress]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    # IPAddress SANs may also hold networks (name constraints); a serving cert only names addresses.
    found = san.get_values_for_type(x509.IPAddress)
    addresses = {a for a in found if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)}
    return set(san.get_values_for_type(x509.DNSName)), addresses


def renewal_due(cert: x509.Certificate, *, now: datetime.datetime | None = None) -> bool:
    """True once no more than :data:`RENEW_FRACTION` of the lifetime remains (or it has expired)."""
    now = now or _utcnow()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now <= lifetime * RENEW_FRACTION


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``.

    A reader (the server's reloader, kubectl) sees the old file or the new one, never half of
    one. ``mkstemp`` creates the file 0600, so a key is never readable by others, not even briefly.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclasses.dataclass(slots=True)
class Outcome:
    """What :func:`ensure` did, for the CLI to print (never key material)."""

    ca: str = "kept"
    """``created``, ``kept``, ``rotated``, ``replaced`` (an expired CA replaced during rotation)."""
    leaf: str = "kept"
    """``issued`` (none before), ``renewed`` or ``kept``."""
    reasons: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    dropped_cas: list[str] = dataclasses.field(default_factory=list)
    """Subjects of old CAs removed from the bundle in this run."""
    bundle: list[x509.Certificate] = dataclasses.field(default_factory=list)
    leaf_cert: x509.Certificate | None = None

    @property
    def changed(self) -> bool:
        return self.ca != "kept" or self.leaf != "kept" or bool(self.dropped_cas)


def ca_name(service: str, namespace: str, now: datetime.datetime) -> x509.Name:
    # A distinct subject per CA keeps old and new apart in a bundle and in error messages.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{service}.{namespace}"[:64]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"webhook CA {now:%Y-%m-%d} {secrets.token_hex(4)}"),
        ]
    )


def _read_ca(out: Path) -> tuple[x509.Certificate, PrivateKey, list[x509.Certificate]] | None:
    """The current CA (the bundle entry whose key is ``ca.key``), its key, and the older CAs."""
    cert_path, key_path = out / CA_CERT, out / CA_KEY
    if not cert_path.exists() and not key_path.exists():
        return None
    if not cert_path.exists() or not key_path.exists():
        present, missing = (cert_path, key_path) if cert_path.exists() else (key_path, cert_path)
        raise errors.CertificateError(
            f"{missing}: missing while {present} exists; restore it, or remove both to start a new CA "
            "(every cluster that trusts the old CA then needs the new ca.crt)"
        )
    bundle = load_certs(cert_path)
    key = load_key(key_path)
    current = [c for c in bundle if same_public_key(c, key)]
    if not current:
        raise errors.CertificateError(f"{cert_path}: no certificate in the bundle matches {key_path}")
    return current[0], key, [c for c in bundle if c is not current[0]]


def _read_leaf(out: Path) -> tuple[x509.Certificate | None, str]:
    """The leaf on disk, or ``None`` with the reason it must be issued."""
    cert_path, key_path = out / TLS_CERT, out / TLS_KEY
    if not cert_path.exists() or not key_path.exists():
        return None, "no serving certificate yet"
    try:
        certs = load_certs(cert_path)
        key = load_key(key_path)
    except errors.CertificateError as exc:
        return None, f"unreadable: {exc}"
    if not certs or not same_public_key(certs[0], key):
        return None, f"{TLS_CERT} does not match {TLS_KEY}"
    return certs[0], ""


def ensure(
    out: Path,
    *,
    service: str,
    namespace: str,
    hosts: Sequence[str] = (),
    ips: Sequence[str] = (),
    days: int = DEFAULT_DAYS,
    ca_days: int = DEFAULT_CA_DAYS,
    rotate_ca: bool = False,
    finish_ca_rotation: bool = False,
    now: datetime.datetime | None = None,
) -> Outcome:
    """Make ``out`` hold a valid CA bundle and a serving certificate for the Service; see the module doc."""
    if days < 1 or ca_days < 1:
        raise errors.CertificateError("--days and the CA lifetime must be at least 1 day")
    if rotate_ca and finish_ca_rotation:
        raise errors.CertificateError("--rotate-ca and --finish-ca-rotation are separate steps; run one")
    now = now or _utcnow()
    extra_names, addresses = split_hosts(hosts, ips=ips)
    dns_names = list(dict.fromkeys([*service_dns_names(service, namespace=namespace), *extra_names]))
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    outcome = Outcome()

    ca_cert: x509.Certificate
    ca_key: PrivateKey
    leaf_key: PrivateKey | None
    existing = _read_ca(out)
    if existing is None:
        ca_cert, ca_key = issue_ca(name=ca_name(service, namespace, now), days=ca_days, now=now)
        previous: list[x509.Certificate] = []
        outcome.ca = "created"
    else:
        ca_cert, ca_key, previous = existing
    if rotate_ca and outcome.ca == "created":
        outcome.notes.append("--rotate-ca ignored: there was no CA to rotate, a new one was created")
        rotate_ca = False
    ca_expired = ca_cert.not_valid_after_utc <= now
    if ca_expired and not rotate_ca:
        raise errors.CertificateError(
            f"{out / CA_CERT}: the CA expired on {ca_cert.not_valid_after_utc:%Y-%m-%d}; "
            "run with --rotate-ca and deploy the new ca.crt"
        )

    # Old CAs stay in the bundle only while they can still vouch for something.
    kept_previous = [c for c in previous if c.not_valid_after_utc > now]
    outcome.dropped_cas += [c.subject.rfc4514_string() for c in previous if c not in kept_previous]

    leaf, missing_reason = _read_leaf(out)
    if finish_ca_rotation and kept_previous:
        if leaf is None or not issued_by(leaf, ca_cert):
            raise errors.CertificateError(
                f"{out / TLS_CERT} is not yet signed by the current CA; run `certs` without "
                "--finish-ca-rotation, deploy the new tls.crt, then finish the rotation"
            )
        outcome.dropped_cas += [c.subject.rfc4514_string() for c in kept_previous]
        kept_previous = []

    if rotate_ca and ca_expired:
        # Nothing trusts an expired CA any more, so there is no overlap to preserve: start over.
        outcome.dropped_cas.append(ca_cert.subject.rfc4514_string())
        ca_cert, ca_key = issue_ca(name=ca_name(service, namespace, now), days=ca_days, now=now)
        outcome.ca = "replaced"
        leaf, missing_reason = None, "the CA was replaced"

    # The leaf pass, against the CA that is current *before* any rotation in this run.
    reasons: list[str] = []
    if leaf is None:
        reasons.append(missing_reason)
    else:
        names, leaf_ips = alt_names(leaf)
        if names != set(dns_names) or leaf_ips != set(addresses):
            reasons.append("requested names differ from the certificate's")
        if not issued_by(leaf, ca_cert):
            reasons.append("not signed by the current CA")
        if renewal_due(leaf, now=now):
            reasons.append(f"expires on {leaf.not_valid_after_utc:%Y-%m-%d}")
    if reasons:
        leaf_cert, leaf_key = issue_leaf(
            ca_cert, ca_key=ca_key, dns_names=dns_names, ips=addresses, days=days, now=now
        )
        outcome.leaf = "issued" if leaf is None and "no serving certificate yet" in reasons else "renewed"
        outcome.reasons = reasons
    else:
        assert leaf is not None
        leaf_cert, leaf_key = leaf, None

    if rotate_ca and not ca_expired:
        # Step 1 of the rotation: the bundle trusts new and old; the leaf (old CA) is re-issued later.
        kept_previous = [ca_cert, *kept_previous]
        ca_cert, ca_key = issue_ca(name=ca_name(service, namespace, now), days=ca_days, now=now)
        outcome.ca = "rotated"
    elif kept_previous:
        outcome.notes.append(
            f"{CA_CERT} still trusts {len(kept_previous)} previous CA(s); once the new {TLS_CERT} "
            "is deployed, run with --finish-ca-rotation"
        )
    if renewal_due(ca_cert, now=now):
        outcome.notes.append(
            f"the CA expires on {ca_cert.not_valid_after_utc:%Y-%m-%d}; rotate it with --rotate-ca"
        )
    capped = leaf_cert.not_valid_after_utc < now + datetime.timedelta(days=days, seconds=-1)
    if leaf_key is not None and capped:
        outcome.notes.append(f"{TLS_CERT} is capped by the CA's expiry; rotate the CA with --rotate-ca")

    bundle = [ca_cert, *kept_previous]
    if outcome.ca != "kept":
        write_atomic(out / CA_KEY, key_pem(ca_key), mode=0o600)
    if outcome.ca != "kept" or outcome.dropped_cas:
        write_atomic(out / CA_CERT, cert_pem(*bundle), mode=0o644)
    if leaf_key is not None:
        # Key first: a reader that catches the pair in between sees a mismatch and retries
        # (webhook.tls.CertReloader never loads a mismatched pair).
        write_atomic(out / TLS_KEY, key_pem(leaf_key), mode=0o600)
        write_atomic(out / TLS_CERT, cert_pem(leaf_cert), mode=0o644)
    outcome.bundle = bundle
    outcome.leaf_cert = leaf_cert
    return outcome
