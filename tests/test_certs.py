"""``webhook.certs`` and the ``certs`` command: what Kubernetes and Python's ssl accept, and rotation."""

from __future__ import annotations

import argparse
import datetime
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from webhook import certs, errors, tls
from webhook.commands import certs as certs_command

SERVICE, NAMESPACE = "admission-webhook", "admission-webhook"
SERVICE_NAMES = [
    "admission-webhook",
    "admission-webhook.admission-webhook",
    "admission-webhook.admission-webhook.svc",
    "admission-webhook.admission-webhook.svc.cluster.local",
]
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
"""Real time: the handshakes below check validity against the system clock."""


def ensure(out: Path, **kwargs: object) -> certs.Outcome:
    options: dict[str, object] = {
        "service": SERVICE,
        "namespace": NAMESPACE,
        "hosts": ["localhost"],
        "ips": ["127.0.0.1"],
        "now": NOW,
    }
    options.update(kwargs)
    return certs.ensure(out, **options)  # type: ignore[arg-type]


def handshake(out: Path, hostname: str, *, cafile: Path | None = None) -> None:
    """A full TLS handshake in memory: the server context serves ``out``'s pair, the client verifies."""
    server_ctx = tls.server_context(cert=out / "tls.crt", key=out / "tls.key")
    client_ctx = ssl.create_default_context(cafile=str(cafile or out / "ca.crt"))
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    client = client_ctx.wrap_bio(client_in, client_out, server_hostname=hostname)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side, outgoing, peer_incoming in (
            ("client", client, client_out, server_in),
            ("server", server, server_out, client_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_incoming.write(outgoing.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.iterdir())}


def test_a_fresh_directory_gets_a_ca_and_a_serving_certificate_with_private_keys_0600(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    outcome = ensure(out)
    assert (outcome.ca, outcome.leaf) == ("created", "issued")
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {
        "ca.crt": 0o644,
        "ca.key": 0o600,
        "tls.crt": 0o644,
        "tls.key": 0o600,
    }


@pytest.mark.parametrize("hostname", [*SERVICE_NAMES, "localhost", "127.0.0.1"])
def test_the_certificate_verifies_against_the_ca_for_every_requested_name(
    tmp_path: Path, hostname: str
) -> None:
    ensure(tmp_path)
    handshake(tmp_path, hostname)


@pytest.mark.parametrize(
    "hostname", ["other.admission-webhook.svc", "admission-webhook.default.svc", "127.0.0.2"]
)
def test_the_certificate_fails_verification_for_any_other_name(tmp_path: Path, hostname: str) -> None:
    ensure(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(tmp_path, hostname)


def test_a_certificate_from_another_ca_fails_verification(tmp_path: Path) -> None:
    ensure(tmp_path / "a")
    ensure(tmp_path / "b")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        handshake(tmp_path / "a", SERVICE_NAMES[2], cafile=tmp_path / "b" / "ca.crt")


def test_the_serving_certificate_is_an_ecdsa_server_certificate_capped_by_its_ca(tmp_path: Path) -> None:
    outcome = ensure(tmp_path, days=30)
    leaf = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    assert outcome.leaf_cert == leaf
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.digital_signature, usage.key_encipherment, usage.key_cert_sign) == (True, False, False)
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.not_valid_after_utc == NOW + datetime.timedelta(days=30)
    assert certs.alt_names(leaf) == (
        set(SERVICE_NAMES) | {"localhost"},
        {certs.ipaddress.ip_address("127.0.0.1")},
    )


def test_running_twice_changes_nothing_not_even_mtimes(tmp_path: Path) -> None:
    ensure(tmp_path)
    before = snapshot(tmp_path)
    outcome = ensure(tmp_path, now=NOW + datetime.timedelta(days=200))
    assert (outcome.ca, outcome.leaf, outcome.changed) == ("kept", "kept", False)
    assert snapshot(tmp_path) == before


def test_the_leaf_is_renewed_when_a_third_of_its_lifetime_remains_and_the_ca_is_kept(tmp_path: Path) -> None:
    ensure(tmp_path)
    ca_before = (tmp_path / "ca.crt").read_bytes()
    later = NOW + datetime.timedelta(days=250)  # 115 of 365 days left
    outcome = ensure(tmp_path, now=later)
    assert (outcome.ca, outcome.leaf) == ("kept", "renewed")
    assert outcome.reasons == [f"expires on {NOW + datetime.timedelta(days=365):%Y-%m-%d}"]
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    assert outcome.leaf_cert is not None
    assert outcome.leaf_cert.not_valid_after_utc == later + datetime.timedelta(days=365)


def test_the_leaf_is_renewed_when_the_requested_names_change(tmp_path: Path) -> None:
    ensure(tmp_path)
    outcome = ensure(tmp_path, hosts=["webhook.example.com"], ips=[])
    assert (outcome.leaf, outcome.reasons) == ("renewed", ["requested names differ from the certificate's"])
    handshake(tmp_path, "webhook.example.com")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, "localhost")


def test_a_leaf_that_does_not_match_its_key_is_reissued(tmp_path: Path) -> None:
    ensure(tmp_path / "a")
    ensure(tmp_path / "b")
    (tmp_path / "a" / "tls.key").write_bytes((tmp_path / "b" / "tls.key").read_bytes())
    outcome = ensure(tmp_path / "a")
    assert (outcome.leaf, outcome.reasons) == ("renewed", ["tls.crt does not match tls.key"])
    handshake(tmp_path / "a", "localhost")


def test_a_ca_certificate_without_its_key_is_an_error_not_a_silent_new_ca(tmp_path: Path) -> None:
    ensure(tmp_path)
    (tmp_path / "ca.key").unlink()
    with pytest.raises(errors.CertificateError, match=r"ca\.key: missing while .*ca\.crt exists; restore it"):
        ensure(tmp_path)


def test_ca_rotation_keeps_both_cas_trusted_until_the_leaf_is_reissued_and_the_rotation_finished(
    tmp_path: Path,
) -> None:
    first = ensure(tmp_path)
    old_ca = first.bundle[0]
    old_leaf_pem = (tmp_path / "tls.crt").read_bytes()

    # Step 1: new CA in front, old CA behind it; the leaf (signed by the old CA) is untouched.
    rotated = ensure(tmp_path, rotate_ca=True)
    assert (rotated.ca, rotated.leaf) == ("rotated", "kept")
    assert [c == old_ca for c in rotated.bundle] == [False, True]
    assert certs.load_certs(tmp_path / "ca.crt") == rotated.bundle
    assert (tmp_path / "tls.crt").read_bytes() == old_leaf_pem
    handshake(tmp_path, "localhost")  # the deployed bundle trusts the old leaf

    # Finishing now would make the cluster distrust the leaf still being served: refused.
    with pytest.raises(errors.CertificateError, match="is not yet signed by the current CA"):
        ensure(tmp_path, finish_ca_rotation=True)

    # Step 2: a plain run re-issues the leaf with the new CA; the bundle still trusts both.
    step2 = ensure(tmp_path)
    assert (step2.ca, step2.leaf, step2.reasons) == ("kept", "renewed", ["not signed by the current CA"])
    assert len(step2.bundle) == 2
    assert step2.notes == [
        "ca.crt still trusts 1 previous CA(s); once the new tls.crt is deployed, "
        "run with --finish-ca-rotation"
    ]
    (tmp_path / "new-ca.crt").write_bytes(certs.cert_pem(step2.bundle[0]))
    handshake(tmp_path, "localhost", cafile=tmp_path / "new-ca.crt")

    # Step 3: the old CA leaves the bundle.
    finished = ensure(tmp_path, finish_ca_rotation=True)
    assert finished.dropped_cas == [old_ca.subject.rfc4514_string()]
    assert certs.load_certs(tmp_path / "ca.crt") == [step2.bundle[0]]
    handshake(tmp_path, "localhost")


def test_an_old_ca_leaves_the_bundle_by_itself_once_it_has_expired(tmp_path: Path) -> None:
    ensure(tmp_path, ca_days=10)
    ensure(tmp_path, rotate_ca=True)
    ensure(tmp_path)  # leaf re-issued by the new CA
    outcome = ensure(tmp_path, now=NOW + datetime.timedelta(days=11))
    assert len(outcome.dropped_cas) == 1
    assert len(certs.load_certs(tmp_path / "ca.crt")) == 1


def test_an_expired_ca_must_be_rotated_and_rotation_then_starts_over(tmp_path: Path) -> None:
    ensure(tmp_path, ca_days=10)
    later = NOW + datetime.timedelta(days=11)
    expected = f"the CA expired on {NOW + datetime.timedelta(days=10):%Y-%m-%d}; run with --rotate-ca"
    with pytest.raises(errors.CertificateError, match=expected):
        ensure(tmp_path, now=later)
    outcome = ensure(tmp_path, now=later, rotate_ca=True)
    assert (outcome.ca, outcome.leaf, len(outcome.bundle)) == ("replaced", "renewed", 1)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    certs_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_the_make_run_command_works_on_an_empty_directory_and_never_prints_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "certs"
    argv = [
        "certs",
        "--service",
        "admission-webhook",
        "--namespace",
        "admission-webhook",
        "--host",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--out",
        str(out),
    ]
    assert run_cli(argv) == 0
    first = capsys.readouterr().out
    assert f"{out}/ca.crt: CA created" in first
    assert f"{out}/tls.crt: issued because no serving certificate yet" in first
    assert run_cli(argv) == 0
    second = capsys.readouterr().out
    assert f"{out}/tls.crt: kept (serial" in second
    for text in (first, second):
        assert "PRIVATE KEY" not in text
        for key in ("ca.key", "tls.key"):
            body = b"".join((out / key).read_bytes().splitlines()[1:-1]).decode()
            assert body[:40] not in text


def test_the_cli_reports_a_refused_step_on_stderr_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["certs", "--service", "svc", "--namespace", "ns", "--out", str(tmp_path)]
    assert run_cli(base) == 0
    assert run_cli([*base, "--rotate-ca"]) == 0
    capsys.readouterr()
    assert run_cli([*base, "--finish-ca-rotation"]) == 1
    assert capsys.readouterr().err == (
        f"error: {tmp_path}/tls.crt is not yet signed by the current CA; run `certs` without "
        "--finish-ca-rotation, deploy the new tls.crt, then finish the rotation\n"
    )
