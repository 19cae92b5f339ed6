"""``certs``: create or renew the webhook's CA and serving certificate (see :mod:`webhook.certs`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from webhook import certs, errors


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="create or renew the CA and the serving certificate (tls.crt, tls.key, ca.crt)",
        description=(
            "Keeps an existing CA, (re)issues the serving certificate when it is missing, a third of "
            "its lifetime from expiry, for other names, or signed by another CA. "
            "Running it twice changes nothing."
        ),
    )
    parser.add_argument("--service", required=True, help="Service name the API server calls")
    parser.add_argument("--namespace", required=True, help="namespace of the Service")
    parser.add_argument("--host", action="append", default=[], help="extra DNS name (repeatable)")
    parser.add_argument("--ip", action="append", default=[], help="extra IP address (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("certs"), help="output directory (default: certs)")
    parser.add_argument("--days", type=int, default=certs.DEFAULT_DAYS, help="serving certificate lifetime")
    parser.add_argument("--ca-days", type=int, default=certs.DEFAULT_CA_DAYS, help="lifetime of a new CA")
    rotation = parser.add_mutually_exclusive_group()
    rotation.add_argument(
        "--rotate-ca",
        action="store_true",
        help="start a CA rotation: new CA, ca.crt holds new+old until --finish-ca-rotation",
    )
    rotation.add_argument(
        "--finish-ca-rotation",
        action="store_true",
        help="drop old CAs from ca.crt (once the re-issued tls.crt is deployed)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        outcome = certs.ensure(
            args.out,
            service=args.service,
            namespace=args.namespace,
            hosts=args.host,
            ips=args.ip,
            days=args.days,
            ca_days=args.ca_days,
            rotate_ca=args.rotate_ca,
            finish_ca_rotation=args.finish_ca_rotation,
        )
    except errors.CertificateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ca = outcome.bundle[0]
    print(
        f"{args.out / certs.CA_CERT}: CA {outcome.ca} ({ca.subject.rfc4514_string()}, "
        f"expires {ca.not_valid_after_utc:%Y-%m-%d}); bundle holds {len(outcome.bundle)} CA(s)"
    )
    for subject in outcome.dropped_cas:
        print(f"{args.out / certs.CA_CERT}: dropped old CA {subject}")
    leaf = outcome.leaf_cert
    assert leaf is not None
    names, ips = certs.alt_names(leaf)
    why = f" because {'; '.join(outcome.reasons)}" if outcome.reasons else ""
    listed = ", ".join(sorted(names) + sorted(map(str, ips)))
    print(
        f"{args.out / certs.TLS_CERT}: {outcome.leaf}{why} (serial {leaf.serial_number:x}, "
        f"expires {leaf.not_valid_after_utc:%Y-%m-%d}, names {listed})"
    )
    for note in outcome.notes:
        print(f"note: {note}")
    return 0
