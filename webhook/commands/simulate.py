"""``simulate``: send one request through webhook configurations the way the API server would.

Exit codes: 0 admitted, 1 rejected, 2 bad input (unreadable file, invalid configuration, missing
``--service-address``), so scripts and CI can assert on what a cluster would do.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import sys
from pathlib import Path

from webhook.emulator import attributes, caller, config, dispatcher, render


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="run a request through Mutating/ValidatingWebhookConfigurations like the API server",
        description="Emulate the API server's admission webhook dispatch for one request: select webhooks "
        "by rules, selectors and matchConditions, call them over HTTPS, apply failurePolicy, patches and "
        "reinvocation, then the validating webhooks; print the outcome and the error a client would see.",
    )
    add = parser.add_argument
    add(
        "--webhooks",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="YAML with webhook configurations (repeatable; other kinds in the file are ignored)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--object", type=Path, metavar="FILE", help="the object (YAML or JSON) being admitted"
    )
    source.add_argument(
        "--review", type=Path, metavar="FILE", help="an AdmissionReview whose request to replay"
    )
    add(
        "--old-object", type=Path, metavar="FILE", help="for UPDATE: the object as stored (default: --object)"
    )
    add(
        "--operation",
        choices=["CREATE", "UPDATE", "DELETE", "CONNECT"],
        help="default CREATE (or the review's)",
    )
    add("--namespace", help="namespace of a namespaced object without metadata.namespace (default: default)")
    add(
        "--namespace-labels",
        default="",
        metavar="K=V,...",
        help="labels of the request's namespace (kubernetes.io/metadata.name is always set)",
    )
    add("--resource", help="resource name when it is not the kind's plural (e.g. for CRDs)")
    add("--subresource", default="", help="subresource, e.g. status, exec, scale")
    add("--user", default=None, help="userInfo.username (default kubernetes-admin)")
    add("--group", action="append", dest="groups", metavar="G", help="userInfo.groups (repeatable)")
    add("--dry-run", action="store_true", help="mark the request as a dry run")
    add(
        "--service-address",
        action="append",
        default=[],
        metavar="NS/NAME=HOST:PORT",
        help="where a service referenced by clientConfig.service listens locally (repeatable)",
    )
    add(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:PORT=ADDR:PORT",
        help="connect to ADDR:PORT for clientConfig.url HOST:PORT (the URL and TLS name are kept)",
    )
    add(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="CA certificates for webhooks whose clientConfig has no caBundle (injected at deploy time)",
    )
    add("--output", choices=["text", "json"], default="text")
    parser.set_defaults(func=run)


def parse_pairs(items: list[str], *, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise config.InvalidInput(f"{flag}: {item!r} is not KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def build_attributes(args: argparse.Namespace) -> attributes.Attributes:
    labels = parse_pairs([p for p in args.namespace_labels.split(",") if p], flag="--namespace-labels")
    user = None
    if args.user is not None or args.groups:
        default = attributes.UserInfo()
        user = attributes.UserInfo(
            username=args.user if args.user is not None else default.username,
            groups=tuple(args.groups) if args.groups else default.groups,
        )
    if args.review is not None:
        return attributes.from_review(
            attributes.read_document(args.review),
            source=str(args.review),
            operation=args.operation,
            namespace_labels=labels,
            user=user,
        )
    old = attributes.read_document(args.old_object) if args.old_object else None
    return attributes.from_object(
        attributes.read_document(args.object),
        source=str(args.object),
        operation=args.operation or "CREATE",
        old_object=old,
        namespace=args.namespace,
        namespace_labels=labels,
        resource=args.resource,
        subresource=args.subresource,
        user=user,
        dry_run=args.dry_run,
    )


def resolver(args: argparse.Namespace) -> dispatcher.Resolve:
    services = parse_pairs(args.service_address, flag="--service-address")
    hosts = parse_pairs(args.resolve, flag="--resolve")

    def resolve(hook: config.Hook) -> caller.Target:
        return caller.target(
            hook.webhook.client_config, webhook=hook.name, service_addresses=services, resolve=hosts
        )

    return resolve


def with_ca_file(loaded: config.Loaded, path: Path | None) -> config.Loaded:
    """Fill in ``caBundle`` where a configuration leaves it to cert-manager or a deploy-time patch."""
    if path is None:
        return loaded
    try:
        bundle = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise config.InvalidInput(f"{path}: cannot read: {exc.strerror or exc}") from None

    def fill(hook: config.Hook) -> config.Hook:
        client = hook.webhook.client_config
        if client.ca_bundle:
            return hook
        webhook = hook.webhook.model_copy(
            update={"client_config": client.model_copy(update={"ca_bundle": bundle})}
        )
        return dataclasses.replace(hook, webhook=webhook)

    return config.Loaded(
        mutating=tuple(map(fill, loaded.mutating)), validating=tuple(map(fill, loaded.validating))
    )


def run(args: argparse.Namespace) -> int:
    try:
        loaded = with_ca_file(config.load(*args.webhooks), args.ca_file)
        attrs = build_attributes(args)
        result = asyncio.run(dispatcher.admit(loaded, attrs, resolve=resolver(args)))
    except config.InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render.json_text(result) if args.output == "json" else render.text(result))
    return 0 if result.admitted else 1
