"""``serve``: run the HTTPS admission webhook server."""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
from typing import Any

# Before anything imports aiohttp: its signal and middleware lists are frozenlist's FrozenList, whose
# C extension is C++ and maps libstdc++ into the worker (1.1 MB resident, measured on `serve`), for
# lists read once per response. The pure-Python class does the same job; the variable reaches the
# workers too. Set it to an empty string to keep the extension.
os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")

import pydantic  # noqa: E402

from webhook import config, errors, logs  # noqa: E402


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve AdmissionReviews over HTTPS",
        description="Serve /mutate, /validate (and /mutate/<group>, /validate/<group>), /healthz, /readyz, "
        "/metrics over HTTPS. Every flag can also be set as WEBHOOK_<FLAG> in the environment.",
    )
    add = parser.add_argument
    add("--host", help="address to bind (default 127.0.0.1; the container uses 0.0.0.0)")
    add("--port", type=int, help="port (default 8443)")
    add("--cert", type=Path, help="PEM certificate chain (default certs/tls.crt)")
    add("--key", type=Path, help="PEM private key (default certs/tls.key)")
    add("--client-ca", type=Path, help="require client certificates signed by this CA (mutual TLS)")
    add(
        "--policies",
        type=Path,
        action="append",
        help="policy file or directory (repeatable; default: the policies installed with the package, "
        "the repository's policies/)",
    )
    add(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="override a policy setting, e.g. podSecurity.level=restricted",
    )
    add("--kubernetes-version", metavar="1.N",
        help="the cluster's version: admission policies are checked with the CEL libraries its API server "
        "allows in new policies (default: the newest)")
    add("--log-format", choices=["json", "console"], help="json (default) or console")
    add("--log-level", help="debug, info (default), warning, error")
    add("--max-body-bytes", type=int, help="largest accepted request body (default 7 MiB)")
    add("--reload-interval", type=float, help="seconds between checks of policy and certificate files")
    add("--drain-seconds", type=float, help="after SIGTERM, keep serving this long before stopping")
    add("--max-concurrent", type=int, help="reviews processed at once; more get HTTP 429")
    add("--max-json-depth", type=int, help="nesting levels a review's body may have (default 100; deeper: 400)")
    add("--max-json-containers", type=int,
        help="objects and arrays a review's body may hold (default 200000; more: 413)")
    add("--max-json-values", type=int, help="values a review's body may hold (default 500000; more: 413)")
    add("--record", type=Path, help="record every review (redacted) as JSON files in this directory")
    add("--record-max-files", type=int, help="keep at most this many recorded reviews (oldest removed first)")
    add("--record-max-bytes", type=int, help="keep recorded reviews under this many bytes in total")
    add("--record-redact-env", action="append", metavar="REGEX",
        help="env var names whose value is redacted in recordings (repeatable; replaces the built-in list)")
    add("--faults", type=Path, help="fault-injection config (YAML) for failurePolicy experiments")
    add(
        "--admin-port",
        type=int,
        help="serve the fault-injection admin API (GET/PUT/DELETE /faults) on 127.0.0.1:PORT, off unless "
        "given; it is plain HTTP without authentication, so it binds to loopback only (use kubectl "
        "exec or port-forward), never to --host",
    )
    add("--workers", type=int, help="worker processes sharing the port (default 1)")
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> config.ServeSettings:
    """Flags given on the command line win over ``WEBHOOK_*`` variables, which win over defaults."""
    given: dict[str, Any] = {
        key: value
        for key, value in vars(args).items()
        if key in config.ServeSettings.model_fields and value is not None
    }
    try:
        return config.ServeSettings(**given)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{_setting_name(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise errors.WebhookError(f"invalid serve settings: {problems}") from None
    except config.SettingsError as exc:
        # A WEBHOOK_* variable that cannot be read (a list setting takes JSON): show what it takes.
        example = ' (a JSON list, e.g. \'["podSecurity.level=restricted"]\')' if exc.field in _LIST_SETTINGS else ""
        raise errors.WebhookError(f"{exc}{example}") from None


_LIST_SETTINGS = frozenset({"set", "policies", "record_redact_env"})


def _setting_name(loc: tuple[Any, ...]) -> str:
    """``--max-body-bytes`` (or ``WEBHOOK_MAX_BODY_BYTES``) for the field ``max_body_bytes``."""
    field = str(loc[0]) if loc else ""
    return f"--{field.replace('_', '-')} (or WEBHOOK_{field.upper()})" if field else "settings"


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    logs.configure(log_format=settings.log_format, level=settings.log_level)
    from webhook import runner

    try:
        return runner.run(settings)
    except errors.CertificateError as exc:
        raise errors.CertificateError(
            f"{exc} (the files come from --cert/--key or WEBHOOK_CERT/WEBHOOK_KEY, --client-ca or "
            "WEBHOOK_CLIENT_CA; `make certs` creates development certificates)"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise errors.ServeFailed(
                f"--port {settings.port}: {settings.host}:{settings.port} is already in use; stop the other "
                "server or pick another --port"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise errors.ServeFailed(f"--host {settings.host}: not an address of this machine") from None
        raise
