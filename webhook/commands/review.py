"""``review``: run the policies over AdmissionReviews, recordings or manifests, without a server."""

from __future__ import annotations

import argparse
from pathlib import Path

from webhook import catalog, errors, offline


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "review",
        help="review files offline: AdmissionReviews, recordings (serve --record) or manifests",
        description=(
            "Run the mutating chain, then the validating chain on the mutated object (as the API server "
            "calls webhooks), over each AdmissionReview, recording or manifest in PATH (files, directories, "
            "or - for stdin; YAML may hold several documents or a kind: List). Prints the verdict, "
            "warnings, denial message and the mutation as a diff. Exit code: 0 all allowed, 1 any denied, "
            "2 unusable input or policy files."
        ),
    )
    add = parser.add_argument
    add("paths", nargs="+", metavar="PATH", help="file, directory or - (stdin)")
    add("--policies", type=Path, action="append",
        help="policy file or directory (repeatable; default policies/)")
    add("--set", action="append", default=[], metavar="PATH=VALUE",
        help="override a policy setting, e.g. podSecurity.level=restricted")
    add("--only", choices=["mutate", "validate"], help="run one chain only, on the object as given")
    add("--output", "-o", choices=["text", "json"], default="text",
        help="text (default) or json: one AdmissionReview response per input")
    shape = parser.add_argument_group("how a plain manifest is wrapped into a request")
    shape.add_argument("--operation", choices=["CREATE", "UPDATE", "DELETE", "CONNECT"], default="CREATE",
                       help="default CREATE (UPDATE uses the manifest as oldObject too; DELETE sends it as "
                       "oldObject)")
    shape.add_argument("--namespace", "-n", default="default",
                       help="namespace for namespaced manifests that name none (default: default)")
    shape.add_argument("--user", default=offline.Shape().username,
                       help="userInfo.username (default developer)")
    shape.add_argument("--group", action="append", dest="groups", metavar="GROUP",
                       help="userInfo.groups (repeatable; default system:authenticated)")
    shape.add_argument("--dry-run", action="store_true", help="set dryRun: true")
    add("--namespace-label", action="append", type=_label, default=[], metavar="KEY=VALUE",
        help="a label of the request's namespace, for namespaceSelector-style opt-ins (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    labels = dict(args.namespace_label) or None
    shape = offline.Shape(
        operation=args.operation, namespace=args.namespace, username=args.user,
        groups=tuple(args.groups) if args.groups else offline.Shape().groups, dry_run=args.dry_run,
        namespace_labels=labels,
    )
    try:
        policy_set = catalog.load(args.policies or [Path("policies")], overrides=args.set)
    except errors.PolicyConfigError as exc:
        raise errors.PolicyConfigError(f"policy files: {exc}") from None
    return offline.run(args.paths, policy_set=policy_set, shape=shape, only=args.only, output=args.output)
