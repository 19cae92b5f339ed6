"""``register`` / ``unregister``: create, update or remove the webhook configurations in a cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from webhook import catalog, errors, registration
from webhook.policy import registry


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "register",
        help="create or update the Mutating/ValidatingWebhookConfiguration (one webhook per policy group)",
        description=(
            "Builds both webhook configurations from the registered policy groups and creates or "
            "replaces them through the cluster's API (in-cluster credentials, else the kubeconfig). "
            "Enforcing (validating) groups are registered Fail, mutating and advisory groups Ignore."
        ),
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--service",
        default="/".join(registration.DEFAULT_SERVICE),
        metavar="NS/NAME",
        help="Service in the cluster (default admission-webhook/admission-webhook)",
    )
    where.add_argument("--url", help="https:// base URL of a webhook outside the cluster")
    parser.add_argument(
        "--ca-bundle",
        default="certs/ca.crt",
        help="PEM CA bundle the API server trusts for the webhook (default certs/ca.crt); "
        "an empty value registers none",
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help="the webhook's own namespace, excluded from every webhook (default: the namespace of "
        f"--service, else {registration.DEFAULT_NAMESPACE})",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the YAML instead of applying it")
    parser.add_argument("--failure-policy-enforcing", choices=["Fail", "Ignore"], default="Fail")
    parser.add_argument("--failure-policy-advisory", choices=["Fail", "Ignore"], default="Ignore")
    parser.add_argument(
        "--timeout-seconds",
        type=int,
        default=None,
        help="timeoutSeconds for every webhook (default 5 enforcing, 3 advisory; at most 30)",
    )
    parser.add_argument(
        "--advisory-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="register this validating group as advisory (its policies only warn or audit)",
    )
    parser.add_argument(
        "--policies",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="policy files or directories to read admission policies (ValidatingAdmissionPolicy) from: "
        "adds the cel webhook with their matchConstraints' resources (repeatable)",
    )
    parser.set_defaults(func=run_register)

    remove = subparsers.add_parser("unregister", help="delete both webhook configurations (absent is fine)")
    remove.set_defaults(func=run_unregister)


def build(args: argparse.Namespace, groups: registry.Registry) -> list[dict[str, object]]:
    if args.url:
        target = registration.Target(url=args.url)
    else:
        target = registration.Target(service=registration.parse_service(args.service))
    ca_bundle: bytes | None = None
    if args.ca_bundle:
        try:
            ca_bundle = Path(args.ca_bundle).read_bytes()
        except OSError as exc:
            raise errors.CertificateError(
                f"{args.ca_bundle}: cannot read the CA bundle ({exc.strerror}); create it with "
                "`python -m webhook certs ...` or pass --ca-bundle"
            ) from None
        if b"-----BEGIN CERTIFICATE-----" not in ca_bundle:
            raise errors.CertificateError(f"{args.ca_bundle}: holds no PEM certificate")
    timeouts = {}
    if args.timeout_seconds is not None:
        timeouts = {"timeout_enforcing": args.timeout_seconds, "timeout_advisory": args.timeout_seconds}
    # The webhook must never match its own namespace, or it could not restart its own Pods.
    namespace = args.namespace or (target.service[0] if target.service else registration.DEFAULT_NAMESPACE)
    options = registration.Options(
        namespace=namespace,
        failure_policy_enforcing=args.failure_policy_enforcing,
        failure_policy_advisory=args.failure_policy_advisory,
        advisory_groups=frozenset(args.advisory_group),
        **timeouts,
    )
    cel = None
    if getattr(args, "policies", None):
        policy_set = catalog.load(args.policies)
        if not policy_set.cel.empty:
            cel = registration.CelPolicies(
                rules=tuple(
                    {"apiGroups": r.api_groups, "apiVersions": r.api_versions, "operations": r.operations,
                     "resources": r.resources, "scope": r.scope}
                    for p in policy_set.cel.policies for r in p.match_constraints.resource_rules
                ),
                fail_closed=any(p.failure_policy == "Fail" for p in policy_set.cel.policies),
            )
    return list(registration.configurations(groups, target=target, ca_bundle=ca_bundle, options=options, cel=cel))


def run_register(args: argparse.Namespace) -> int:
    configs = build(args, catalog.REGISTRY)
    if args.dry_run:
        print(registration.to_yaml(configs), end="")
        return 0
    for line in registration.apply(configs):
        print(line)
    return 0


def run_unregister(args: argparse.Namespace) -> int:
    for line in registration.delete():
        print(line)
    return 0
